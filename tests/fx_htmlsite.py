"""A static documentation site on 127.0.0.1: tests/fixtures/html/ served with real Content-Types.

    GET /<dir>/<page>.html   the fixture page, text/html; charset=utf-8
    site.serve(path, body, content_type)   any other answer at `path` (a PDF, markdown, a huge page)
"""

from __future__ import annotations

import contextlib
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

try:
    import pytest
except ImportError:
    pytest = None  # type: ignore[assignment]

__all__ = ["HTML_DIR", "HtmlSite", "html_site", "serve_html_site"]

HTML_DIR = Path(__file__).resolve().parent / "fixtures" / "html"
_TYPES = {".html": "text/html; charset=utf-8", ".md": "text/markdown; charset=utf-8",
          ".txt": "text/plain; charset=utf-8"}


class HtmlSite:
    def __init__(self, root: Path = HTML_DIR) -> None:
        self.root = Path(root)
        self.overrides: dict[str, tuple[bytes, str | None]] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.site = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="html-site", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def serve(self, path: str, body: bytes | str, content_type: str | None) -> str:
        """Answer `path` with `body` (None: no Content-Type header at all); returns its URL."""
        with self._lock:
            self.overrides["/" + path.lstrip("/")] = (body.encode() if isinstance(body, str) else body, content_type)
        return self.url(path)

    def answer(self, path: str) -> tuple[int, bytes, str | None]:
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            if path in self.overrides:
                body, media = self.overrides[path]
                return 200, body, media
        file = (self.root / path.lstrip("/")).resolve()
        if self.root.resolve() not in file.parents or not file.is_file():
            return 404, b"404: Not Found\n", "text/plain"
        media = _TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return 200, file.read_bytes(), media

    def start(self) -> HtmlSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: HtmlSite


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:  # noqa: N802
        status, body, media = self.server.site.answer(unquote(urlsplit(self.path).path))
        self.send_response(status)
        if media is not None:
            self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve_html_site(root: Path = HTML_DIR) -> Iterator[HtmlSite]:
    site = HtmlSite(root).start()
    try:
        yield site
    finally:
        site.stop()


if pytest is not None:

    @pytest.fixture
    def html_site() -> Iterator[HtmlSite]:
        with serve_html_site() as site:
            yield site
