"""A local "upstream" on 127.0.0.1 for the lock: raw files with ETag/Last-Modified and 304s, plus
the GitHub endpoints `lock` and `outdated` use (commits by ref as `application/vnd.github.sha`,
tags paged 100 at a time, commits by SHA as JSON), in GitHub's wire format.

    with serve_upstream() as up:
        up.files["spf13/cobra/v1.9.1/README.md"] = b"# Cobra"
        up.refs[("spf13", "cobra", "v1.9.1")] = "a" * 40
        os.environ["DEADZONE_URL_REWRITE"] = up.rewrite; os.environ["GITHUB_API_URL"] = up.api_url
        ...
        up.bodies_sent        # how many 200s carried a file body
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

try:  # bench/lock.py uses serve_upstream without pytest
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

__all__ = ["Upstream", "serve_upstream", "upstream"]

LAST_MODIFIED = "Tue, 01 Dec 2026 10:00:00 GMT"


@dataclass
class Upstream:
    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)  # "OWNER/REPO/REF/PATH" → body
    refs: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (owner, repo, ref) → commit sha
    tags: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # "owner/repo" → [(name, sha)]
    dates: dict[str, str] = field(default_factory=dict)  # commit sha → ISO date
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    bodies_sent: int = 0
    not_modified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    any_path: bool = False  # benches: every raw path and ref exists (body and sha derived from the name)

    @property
    def rewrite(self) -> str:
        return f"https://raw.githubusercontent.com/=http://127.0.0.1:{self.port}/raw/"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.bodies_sent = self.not_modified = 0


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def _handler(up: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            with up.lock:
                up.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
            if path.startswith("/raw/"):
                return self._raw(path[len("/raw/"):])
            if path.startswith("/api/repos/"):
                return self._api(path[len("/api/repos/"):].split("/"), parse_qs(parts.query))
            self._send(404, b'{"message": "Not Found"}', "application/json")

        def _raw(self, key: str) -> None:
            body = up.files.get(key)
            if body is None and up.any_path:
                body = f"# {key}\n\nGenerated for the lock benchmark.\n".encode()
            if body is None:
                return self._send(404, b"404: Not Found", "text/plain")
            etag = _etag(body)
            if self.headers.get("If-None-Match") == etag:
                with up.lock:
                    up.not_modified += 1
                return self._send(304, b"", None, {"ETag": etag})
            with up.lock:
                up.bodies_sent += 1
            self._send(200, body, "text/plain; charset=utf-8", {"ETag": etag, "Last-Modified": LAST_MODIFIED})

        def _api(self, seg: list[str], query: dict[str, list[str]]) -> None:
            if len(seg) == 4 and seg[2] == "commits":
                owner, repo, _, ref = seg
                if self.headers.get("Accept") == "application/vnd.github.sha":
                    sha = up.refs.get((owner, repo, ref))
                    if sha is None and up.any_path:
                        sha = hashlib.sha1(f"{owner}/{repo}@{ref}".encode()).hexdigest()
                    if sha is None:
                        return self._send(422, b'{"message": "No commit found for SHA: x"}', "application/json")
                    return self._send(200, sha.encode(), "application/vnd.github.sha")
                if ref in up.dates:
                    doc = {"sha": ref, "commit": {"committer": {"date": up.dates[ref]}}}
                    return self._send(200, json.dumps(doc).encode(), "application/json")
            if len(seg) == 3 and seg[2] == "tags":
                names = up.tags.get(f"{seg[0]}/{seg[1]}")
                if names is not None:
                    page, per = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["30"])[0])
                    chosen = names[(page - 1) * per: page * per]
                    doc = [{"name": n, "commit": {"sha": s, "url": ""}, "zipball_url": "", "tarball_url": ""}
                           for n, s in chosen]
                    return self._send(200, json.dumps(doc).encode(), "application/json")
            self._send(404, b'{"message": "Not Found"}', "application/json")

        def _send(self, status: int, body: bytes, ctype: str | None, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def serve_upstream() -> Iterator[Upstream]:
    up = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(up))
    server.daemon_threads = True
    up.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield up
    finally:
        server.shutdown()
        server.server_close()


def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    """A fresh upstream, with DEADZONE_URL_REWRITE and GITHUB_API_URL pointing at it."""
    with serve_upstream() as up:
        monkeypatch.setenv("DEADZONE_URL_REWRITE", up.rewrite)
        monkeypatch.setenv("GITHUB_API_URL", up.api_url)
        yield up


if pytest is not None:
    upstream = pytest.fixture(upstream)
