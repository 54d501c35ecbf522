"""The ffnas search service: REST API, persistence, controller and CLI."""
