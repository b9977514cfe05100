"""A fake `GET /repos/{owner}/{repo}/actions/caches` on 127.0.0.1 speaking GitHub's JSON shape.

    caches_api.add_caches(["deadzone-a-1", ...])       # entries the repo holds
    caches_api.fail(500, times=2)                      # the next two requests answer 500
    caches_api.requests                                # [(path, {query}, {headers})]

It filters by the `key` prefix, pages with `per_page` (max 100, like GitHub) and `page`, and
answers 401 when `require_token` is set and the Bearer token differs.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = ["FakeCachesApi", "caches_api"]


class FakeCachesApi:
    def __init__(self, repo: str = "octo/deadzone") -> None:
        self.repo = repo
        self.caches: list[dict[str, Any]] = []
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.require_token: str | None = None
        self.total_count_override: int | None = None
        self._faults: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.api = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add_caches(self, keys: list[str], ref: str = "refs/heads/main") -> None:
        with self._lock:
            for key in keys:
                n = len(self.caches) + 1
                self.caches.append({
                    "id": 1000 + n, "ref": ref, "key": key, "version": f"{n:064x}",
                    "last_accessed_at": "2026-01-02T03:04:05.000000000Z",
                    "created_at": "2026-01-01T00:00:00.000000000Z", "size_in_bytes": 4096 + n,
                })

    def fail(self, status: int, *, times: int = 1, headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self._faults.extend([(status, dict(headers or {}))] * times)

    def pages_requested(self) -> list[int]:
        return [int(query.get("page", "1")) for _, query, _ in self.requests]

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.requests.append((path, query, headers))
            if self._faults:
                status, extra = self._faults.pop(0)
                return status, extra, {"message": "injected fault"}
        if path != f"/repos/{self.repo}/actions/caches":
            return 404, {}, {"message": "Not Found"}
        if self.require_token and headers.get("authorization") != f"Bearer {self.require_token}":
            return 401, {}, {"message": "Bad credentials"}
        prefix = query.get("key", "")
        per_page = min(int(query.get("per_page", "30")), 100)
        page = int(query.get("page", "1"))
        matching = [c for c in self.caches if c["key"].startswith(prefix)]
        items = matching[(page - 1) * per_page: page * per_page]
        total = self.total_count_override if self.total_count_override is not None else len(matching)
        return 200, {}, {"total_count": total, "actions_caches": items}

    def start(self) -> "FakeCachesApi":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        parts = urlsplit(self.path)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, extra, body = self.server.api.answer(parts.path, query, headers)  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass


@pytest.fixture
def caches_api() -> Iterator[FakeCachesApi]:
    """A fresh fake actions/caches API for repo `octo/deadzone`."""
    api = FakeCachesApi().start()
    try:
        yield api
    finally:
        api.stop()
