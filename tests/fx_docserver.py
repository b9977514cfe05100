"""A real HTTP server on 127.0.0.1 that serves the docs mirror the way raw.githubusercontent.com would,
with faults injected per path. Every scrape test fetches through it.

The mirror (tests/fixtures/docs-mirror) has index.json mapping raw GitHub URLs
`https://raw.githubusercontent.com/OWNER/REPO/REF/PATH` to `files/<sha256>`; the server answers
`GET /OWNER/REPO/REF/PATH` with that file and 404 for anything else.

    with serve_mirror() as server:                      # plain context manager (bench scripts)
        os.environ["DEADZONE_URL_REWRITE"] = server.rewrite
        server.faults.status(url, 500, times=2)         # 500 twice, then the file
        ...
        server.requests_for(url)[0].headers["authorization"]

Fixtures: `docs_server` (a fresh server per test) and `docs_server_env` (the same, with
DEADZONE_URL_REWRITE set through monkeypatch). Faults take a raw GitHub URL, a local URL or a
server path. Rules for one path apply in the order added; `times=None` means forever.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

try:  # bench scripts use serve_mirror without pytest
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

__all__ = ["DocServer", "Fault", "RecordedRequest", "serve_mirror", "MIRROR_DIR", "RAW_PREFIX",
           "docs_server", "docs_server_env"]

MIRROR_DIR = Path(__file__).resolve().parent / "fixtures" / "docs-mirror"
RAW_PREFIX = "https://raw.githubusercontent.com/"
# A small PNG header: NUL bytes and invalid UTF-8, as a mislinked image would be.
BINARY_BODY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"
NON_UTF8_BODY = "# Caf\u00e9\n\nLatin-1 text: na\u00efve r\u00e9sum\u00e9.\n".encode("latin-1")
_CHUNK = 64 * 1024


@dataclass
class Fault:
    """How to answer one request. `body=None` serves the mirrored file (404 if there is none)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    hang: float | None = None  # seconds to wait before answering; cut short when the server stops
    truncate: bool = False  # announce the full Content-Length, send half, close
    chunked: bool = False  # Transfer-Encoding: chunked (no Content-Length)
    drip: float | None = None  # send the body one byte at a time, this many seconds apart (a slow-drip server)
    times: int | None = None  # None: every request


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


def _path_of(target: str) -> str:
    """A raw GitHub URL, a local URL or a path → the unquoted server path."""
    if target.startswith(("http://", "https://")):
        target = urlsplit(target).path
    if not target.startswith("/"):
        raise ValueError(f"not a URL or an absolute path: {target!r}")
    return unquote(target)


class Faults:
    """Per-path rules, consumed in order; thread-safe (the server is threaded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, list[Fault]] = {}

    def add(self, target: str, fault: Fault) -> None:
        with self._lock:
            self._rules.setdefault(_path_of(target), []).append(fault)

    def status(self, target: str, code: int, *, times: int | None = None, retry_after: str | None = None,
               headers: dict[str, str] | None = None) -> None:
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        self.add(target, Fault(status=code, headers=extra, body=f"{code}: {HTTPStatus(code).phrase}\n".encode(),
                               times=times))

    def not_found(self, target: str, *, times: int | None = None) -> None:
        self.status(target, 404, times=times)

    def hang(self, target: str, seconds: float = 30.0, *, times: int | None = None) -> None:
        self.add(target, Fault(hang=seconds, times=times))

    def truncate(self, target: str, *, times: int | None = None) -> None:
        self.add(target, Fault(truncate=True, times=times))

    def body(self, target: str, data: bytes | str, *, times: int | None = None, chunked: bool = False,
             headers: dict[str, str] | None = None) -> None:
        """Serve `data` instead of the file (edit a document, or serve a path the mirror lacks)."""
        raw = data.encode() if isinstance(data, str) else data
        self.add(target, Fault(body=raw, times=times, chunked=chunked, headers=dict(headers or {})))

    def drip(self, target: str, data: bytes | str, every: float, *, times: int | None = None) -> None:
        """Serve `data` one byte per `every` seconds (headers at once): per-read timeouts never fire."""
        raw = data.encode() if isinstance(data, str) else data
        self.add(target, Fault(body=raw, drip=every, times=times))

    def redirect(self, target: str, location: str, *, status: int = 302, times: int | None = None) -> None:
        self.add(target, Fault(status=status, headers={"Location": location}, body=b"", times=times))

    def binary(self, target: str, *, times: int | None = None) -> None:
        self.body(target, BINARY_BODY, times=times)

    def non_utf8(self, target: str, *, times: int | None = None) -> None:
        self.body(target, NON_UTF8_BODY, times=times)

    def clear(self, target: str | None = None) -> None:
        with self._lock:
            if target is None:
                self._rules.clear()
            else:
                self._rules.pop(_path_of(target), None)

    def take(self, path: str) -> Fault:
        """The rule for this request (using up one of its `times`), or the default answer."""
        with self._lock:
            for rule in self._rules.get(path, []):
                if rule.times is None:
                    return rule
                if rule.times > 0:
                    rule.times -= 1
                    return rule
        return Fault()


class DocServer:
    """The mirror behind a ThreadingHTTPServer on 127.0.0.1 (a free port)."""

    def __init__(self, mirror_dir: Path = MIRROR_DIR, port: int = 0) -> None:
        self.mirror_dir = Path(mirror_dir)
        self.index: dict[str, dict[str, Any]] = json.loads((self.mirror_dir / "index.json").read_text("utf-8"))
        self._files = {_path_of(url): self.mirror_dir / "files" / entry["sha256"] for url, entry in self.index.items()}
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.docs = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="docserver", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def rewrite(self) -> str:
        """The DEADZONE_URL_REWRITE value that sends raw GitHub URLs here."""
        return f"{RAW_PREFIX}={self.base_url}"

    def url_for(self, target: str) -> str:
        """The local URL that serves a raw GitHub URL or a path."""
        return self.base_url + _path_of(target).lstrip("/")

    def urls(self, prefix: str = RAW_PREFIX) -> list[str]:
        """Raw GitHub URLs in the mirror starting with `prefix`, sorted."""
        return sorted(url for url in self.index if url.startswith(prefix))

    def sha256_of(self, url: str) -> str:
        return self.index[url]["sha256"]

    def file_bytes(self, target: str) -> bytes | None:
        path = self._files.get(_path_of(target))
        return path.read_bytes() if path else None

    def requests_for(self, target: str) -> list[RecordedRequest]:
        path = _path_of(target)
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def set_rewrite_env(self, monkeypatch: Any) -> None:
        """Point DEADZONE_URL_REWRITE at this server for the rest of the test."""
        monkeypatch.setenv("DEADZONE_URL_REWRITE", self.rewrite)

    def record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers))

    def start(self) -> DocServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def wait_or_stop(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    docs: DocServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients that gave up are expected
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, each keep-alive response
    # stalls ~40 ms on the client's delayed ACK (324 files took 1.9 s instead of 0.2 s).
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        docs = self.server.docs
        path = unquote(urlsplit(self.path).path)
        docs.record(self.command, path, {name.lower(): value for name, value in self.headers.items()})
        fault = docs.faults.take(path)
        if fault.hang:
            docs.wait_or_stop(fault.hang)
            self.close_connection = True
        body = fault.body if fault.body is not None else docs.file_bytes(path)
        status = fault.status
        if body is None:
            status, body = 404, b"404: Not Found\n"
        self._answer(status, body, fault)

    def _answer(self, status: int, body: bytes, fault: Fault) -> None:
        self.send_response(status)
        if not any(name.lower() == "content-type" for name in fault.headers):
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        for name, value in fault.headers.items():
            self.send_header(name, value)
        if fault.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), _CHUNK):
                piece = body[start:start + _CHUNK]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(max(len(body), 1) if fault.truncate else len(body)))
        self.end_headers()
        if fault.drip is not None:
            self.wfile.flush()
            for index in range(len(body)):
                if self.server.docs._stopping.is_set():
                    break
                self.wfile.write(body[index:index + 1])
                self.wfile.flush()
                self.server.docs.wait_or_stop(fault.drip)
            self.close_connection = True
            return
        if fault.truncate:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass


@contextlib.contextmanager
def serve_mirror(mirror_dir: Path = MIRROR_DIR) -> Iterator[DocServer]:
    """Serve `mirror_dir` on 127.0.0.1 for the duration of the block."""
    server = DocServer(mirror_dir).start()
    try:
        yield server
    finally:
        server.stop()


if pytest is not None:

    @pytest.fixture
    def docs_server() -> Iterator[DocServer]:
        """A fresh mirror server (its own port, faults and request log) for one test."""
        with serve_mirror(MIRROR_DIR) as server:
            yield server

    @pytest.fixture
    def docs_server_env(docs_server: DocServer, monkeypatch: pytest.MonkeyPatch) -> DocServer:
        """`docs_server` with DEADZONE_URL_REWRITE pointing raw GitHub URLs at it."""
        docs_server.set_rewrite_env(monkeypatch)
        return docs_server
