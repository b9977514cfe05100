"""Fakes of the three services kind godoc talks to, on one real HTTP server on 127.0.0.1:

- the GitHub Contents API: `GET /repos/<owner>/<repo>/contents/<dir>?ref=R` answers the JSON
  array GitHub sends (name, path, sha, size, type, url, html_url, git_url, download_url) for a
  directory of `src_root` (any ref), 404 with GitHub's JSON error otherwise;
- raw.githubusercontent.com: `GET /raw/<owner>/<repo>/<ref>/<path>` (download_url's target);
- a module proxy `GET /proxy/<escaped module>/@v/<version>.zip` and a checksum database
  `GET /sumdb/lookup/<module>@<version>` (the text record: id, the two hash lines, the note).

    with serve_godoc(src_root) as server:
        env = server.env()     # DEADZONE_URL_REWRITE / DEADZONE_GOPROXY / DEADZONE_SUMDB
        server.add_module("github.com/google/uuid", "v1.3.0", zip_bytes, h1)
        server.rate_limit(times=1, reset_in=1)   # next Contents API calls: 403, remaining 0

The `godoc_server` fixture serves tests/fixtures/godoc/src.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

try:
    import pytest
except ImportError:  # pragma: no cover - bench scripts
    pytest = None  # type: ignore[assignment]

__all__ = ["GodocServer", "serve_godoc", "godoc_server", "GODOC_FIXTURES"]

GODOC_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "godoc"


@dataclass
class GodocServer:
    src_root: Path
    base: str = ""
    modules: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)  # escaped path, version
    rate_limited: list[int] = field(default_factory=lambda: [0])  # Contents API calls still refused
    reset_in: list[float] = field(default_factory=lambda: [0.0])
    contents_calls: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {"DEADZONE_URL_REWRITE": f"https://api.github.com/={self.base}/;"
                                        f"https://raw.githubusercontent.com/={self.base}/raw/",
                "DEADZONE_GOPROXY": f"{self.base}/proxy", "DEADZONE_SUMDB": f"{self.base}/sumdb"}

    def add_module(self, module: str, version: str, zip_bytes: bytes, h1: str) -> None:
        self.modules[(module, version)] = (zip_bytes, h1)

    def rate_limit(self, times: int, reset_in: float) -> None:
        self.rate_limited[0], self.reset_in[0] = times, reset_in


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _handler(server: GodocServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _not_found(self) -> None:
            body = json.dumps({"message": "Not Found", "documentation_url":
                               "https://docs.github.com/rest/repos/contents#get-repository-content",
                               "status": "404"}).encode()
            self._send(404, body, "application/json; charset=utf-8")

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            if path.startswith("/repos/"):
                return self._contents(path, parse_qs(parts.query).get("ref", ["main"])[0])
            if path.startswith("/raw/"):
                owner, repo, ref, rest = path[5:].split("/", 3)
                file = server.src_root / rest.removeprefix("src/")
                if rest.startswith("src/") and file.is_file():
                    return self._send(200, file.read_bytes(), "text/plain; charset=utf-8")
                return self._send(404, b"404: Not Found", "text/plain")
            if path.startswith("/proxy/") and path.endswith(".zip") and "/@v/" in path:
                module, version = path[7:-4].split("/@v/")
                found = server.modules.get((module, version))
                if found:
                    return self._send(200, found[0], "application/zip")
                return self._send(404, f"not found: {module}@{version}".encode(), "text/plain")
            if path.startswith("/sumdb/lookup/"):
                module, _, version = path[14:].rpartition("@")
                found = server.modules.get((module, version))
                if not found:
                    return self._send(404, b"not found", "text/plain")
                record = (f"12345\n{module} {version} {found[1]}\n{module} {version}/go.mod "
                          "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\ngo.sum database tree\n"
                          "99999\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— sum.golang.org Az3grb\n")
                return self._send(200, record.encode(), "text/plain; charset=utf-8")
            self._send(404, b"no such route", "text/plain")

        def _contents(self, path: str, ref: str) -> None:
            server.contents_calls.append(path)
            if server.rate_limited[0] > 0:
                server.rate_limited[0] -= 1
                reset = int(time.time() + server.reset_in[0] + 0.999)
                body = json.dumps({"message": "API rate limit exceeded for 127.0.0.1.",
                                   "documentation_url": "https://docs.github.com/rest/overview/rate-limits"}).encode()
                return self._send(403, body, "application/json; charset=utf-8",
                                  {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0",
                                   "x-ratelimit-reset": str(reset), "x-ratelimit-used": "60"})
            owner, repo, _, rest = (path[7:].split("/", 3) + [""])[:4]
            if not rest.startswith("src/"):
                return self._not_found()
            directory = server.src_root / rest[4:]
            if not directory.is_dir():
                return self._not_found()
            entries = []
            for child in sorted(directory.iterdir()):
                rel = f"{rest}/{child.name}"
                is_file = child.is_file()
                data = child.read_bytes() if is_file else b""
                api = f"https://api.github.com/repos/{owner}/{repo}/contents/{rel}?ref={ref}"
                entries.append({
                    "name": child.name, "path": rel, "sha": _git_blob_sha(data) if is_file else "0" * 40,
                    "size": len(data), "url": api,
                    "html_url": f"https://github.com/{owner}/{repo}/{'blob' if is_file else 'tree'}/{ref}/{rel}",
                    "git_url": f"https://api.github.com/repos/{owner}/{repo}/git/blobs/{_git_blob_sha(data)}",
                    "download_url": f"https://raw.githubusercontent.com/{owner}/{repo}/{ref}/{rel}" if is_file else None,
                    "type": "file" if is_file else "dir",
                    "_links": {"self": api}})
            self._send(200, json.dumps(entries).encode(), "application/json; charset=utf-8",
                       {"x-ratelimit-remaining": "4999"})

    return Handler


@contextlib.contextmanager
def serve_godoc(src_root: Path) -> Iterator[GodocServer]:
    server = GodocServer(Path(src_root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


if pytest is not None:
    @pytest.fixture
    def godoc_server(monkeypatch: "pytest.MonkeyPatch") -> Iterator[GodocServer]:
        """The fakes over tests/fixtures/godoc/src, with the environment pointing at them."""
        with serve_godoc(GODOC_FIXTURES / "src") as server:
            for name, value in server.env().items():
                monkeypatch.setenv(name, value)
            yield server
