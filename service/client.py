"""A small HTTP client of the ffnas API, used by the CLI (and usable from Python).

The server and token come from `Settings` (``FFNAS_URL``, ``FFNAS_TOKEN``) unless given.
Errors from the API become `ApiError` with the server's message (for 422, one line per
field: ``n_trials: `n_trials <= 100000` must hold ...``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from service.core.config import get_settings

__all__ = [
    "ApiError",
    "Client",
    "FINISHED",
    "export_trial",
    "get_job",
    "list_trials",
    "pareto",
    "submit_job",
]

API = "/api/v1"
FINISHED = frozenset({"stopped", "completed", "failed"})


class ApiError(Exception):
    """An HTTP error answer of the API (or no answer: `status` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message if status == 0 else f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def _message(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text or response.reason_phrase
    if isinstance(detail, list):
        lines = []
        for error in detail:
            loc = ".".join(str(p) for p in error.get("loc", []) if p != "body") or "(body)"
            lines.append(f"{loc}: {error.get('msg', error)}")
        return "\n".join(lines)
    return str(detail)


class Client:
    """One API connection. Use as a context manager or call `close()`."""

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        timeout_s: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings = get_settings()
        token = token if token is not None else settings.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = (url or settings.api_url).rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout_s or settings.client_timeout_s,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, f"{API}{path}", **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach the ffnas API at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise ApiError(response.status_code, _message(response))
        return response.json() if response.content else None

    # --- jobs ---------------------------------------------------------------------------
    def submit_job(self, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(self._request("POST", "/jobs", json=spec))

    def list_jobs(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return dict(self._request("GET", "/jobs", params=params))

    def get_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/jobs/{job_id}"))

    def stop_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/jobs/{job_id}/stop"))

    def resume_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/jobs/{job_id}/resume"))

    def delete_job(self, job_id: str) -> None:
        self._request("DELETE", f"/jobs/{job_id}")

    # --- results ------------------------------------------------------------------------
    def list_trials(
        self, job_id: str, *, state: str | None = None, limit: int = 1000, offset: int = 0
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state:
            params["state"] = state
        return dict(self._request("GET", f"/jobs/{job_id}/trials", params=params))

    def pareto(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/jobs/{job_id}/pareto"))

    def export_trial(self, *, job_id: str, number: int, fmt: str) -> dict[str, Any]:
        """``{"filename", "content", "lossy"}`` of one trial's design in format `fmt`."""
        return dict(
            self._request("GET", f"/jobs/{job_id}/trials/{number}/export", params={"format": fmt})
        )

    def targets(self) -> dict[str, Any]:
        return dict(self._request("GET", "/targets"))

    # --- live ---------------------------------------------------------------------------
    def events(self, job_id: str, *, reconnects: int = 5) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(event, data)`` pairs of the job's event stream until the job is finished.

        A dropped connection is resumed from the last event id, up to `reconnects` times in
        a row.
        """
        last_id: str | None = None
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with self._http.stream(
                    "GET",
                    f"{API}/jobs/{job_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(self._http.timeout.connect, read=None),
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise ApiError(response.status_code, _message(response))
                    for event, data, event_id in _parse_sse(response.iter_lines()):
                        failures = 0
                        last_id = event_id or last_id
                        yield event, data
                return
            except httpx.TransportError as exc:
                failures += 1
                if failures > reconnects:
                    raise ApiError(0, f"event stream of job {job_id} lost: {exc}") from exc
                time.sleep(min(2.0**failures * 0.1, 5.0))

    def wait(self, job_id: str) -> dict[str, Any]:
        """Block until the job is finished; return its final public view."""
        for _ in self.events(job_id):
            pass
        return self.get_job(job_id)


def _parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    event, data, event_id = "message", "", None
    for line in lines:
        if line == "":
            if data:
                yield event, json.loads(data), event_id
            event, data = "message", ""
        elif line.startswith(":"):
            continue  # keep-alive comment
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data = f"{data}\n{value}" if data else value
            elif name == "id":
                event_id = value


def submit_job(spec: dict[str, Any]) -> dict[str, Any]:
    with Client() as client:
        return client.submit_job(spec)


def get_job(job_id: str) -> dict[str, Any]:
    with Client() as client:
        return client.get_job(job_id)


def list_trials(job_id: str, *, state: str | None = None) -> dict[str, Any]:
    with Client() as client:
        return client.list_trials(job_id, state=state)


def pareto(job_id: str) -> dict[str, Any]:
    with Client() as client:
        return client.pareto(job_id)


def export_trial(*, job_id: str, number: int, fmt: str) -> dict[str, Any]:
    with Client() as client:
        return client.export_trial(job_id=job_id, number=number, fmt=fmt)
