"""`release` and `fetch-release` against an API that answers 200 with what GitHub never sends
(a captive portal's HTML, JSON of another shape): a clear error, nothing uploaded."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from deadzone_build.errors import ReleaseError
from deadzone_build.publish.release import fetch_release, release_db

ANSWERS = {
    "html": ("text/html; charset=utf-8", b"<!DOCTYPE html><html><body>Sign in to the Wi-Fi</body></html>"),
    "json list": ("application/json", b"[1, 2, 3]"),
    "json without id": ("application/json", json.dumps({"tag_name": "v1", "id": "seven"}).encode()),
    "json null id": ("application/json", b'{"id": null, "upload_url": 5}'),
}


class _Portal(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answer: tuple[str, bytes] = ANSWERS["html"]
    seen: list[str] = []

    def _reply(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        kind, body = self.answer
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _reply  # noqa: N815 - the stdlib's names

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(params=sorted(ANSWERS))
def portal(request) -> Iterator[str]:
    handler = type("Handler", (_Portal,), {"answer": ANSWERS[request.param], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
        assert not [line for line in handler.seen if not line.startswith("GET ")]  # nothing was written
    finally:
        server.shutdown()
        server.server_close()


def test_release_against_a_wrong_api_is_a_clear_error(portal, release_files):
    with pytest.raises(ReleaseError, match="which is not what GitHub sends|is not JSON"):
        release_db(tag="v1.0.0", repo="acme/docs", db=release_files.db, registry=release_files.registry,
                   api_url=portal, token="t0ken", sleep=lambda s: None)


def test_fetch_release_against_a_wrong_api_is_a_clear_error(portal, tmp_path):
    out = tmp_path / "deadzone.db"
    with pytest.raises(ReleaseError, match="which is not what GitHub sends|is not JSON"):
        fetch_release(tag="latest", repo="acme/docs", out=out, api_url=portal, token="t0ken", sleep=lambda s: None)
    assert not out.exists()
