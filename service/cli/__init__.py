"""The `ffnas` command line. One module per command group; `main.py` assembles them."""
