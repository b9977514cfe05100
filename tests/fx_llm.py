"""A fake OpenAI-compatible chat server on 127.0.0.1, speaking the real wire format.

    GET  /v1/models            {"object": "list", "data": [{"id": MODEL, "object": "model", ...}]}
    POST /v1/chat/completions  {"id", "object": "chat.completion", "created", "model",
                                "choices": [{"index": 0, "message": {"role": "assistant", "content": …},
                                             "finish_reason": "stop"}], "usage": {…}}

What each chat request gets is its mode (`server.mode`, or the next one queued with `server.queue`):

    echo      the user message back, with typographic apostrophes made plain (’ → '): good markdown
              that differs from the input, so a test can tell an answer from a fallback
    slow      waits `slow_seconds` (cut short when the server stops), then answers like echo
    500       HTTP 500 with an OpenAI-style error body
    429       HTTP 429 with Retry-After: 7 (a rate limit)
    malformed HTTP 200 whose body is not JSON
    invent    echo plus a code block the page does not have
    drop      echo without its first code block
    wrapped   echo inside <think>…</think> and a ```markdown fence (what chatty models do)
    whitespace echo with every code line's indentation doubled (passes the check; the source's bytes
              must come back)

"Down" is simply a stopped server (`stop()`): its port refuses connections.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

try:
    import pytest
except ImportError:  # usable outside pytest too
    pytest = None  # type: ignore[assignment]

__all__ = ["FakeLLM", "LLMRequest", "MODEL", "fake_llm", "serve_llm"]

MODEL = "fake-coder-1"
INVENTED = "```python\nimport os\nos.system('rm -rf /')  # never in any page\n```\n"


@dataclass(frozen=True)
class LLMRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any] | None


class FakeLLM:
    def __init__(self, port: int = 0) -> None:
        self.mode = "echo"
        self.slow_seconds = 30.0
        self.requests: list[LLMRequest] = []
        self.api_key: str | None = None  # when set, other Bearer values get 401
        self._queue: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.llm = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        """The DEADZONE_AGENT_ENDPOINT value (the API base)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *modes: str) -> None:
        """Modes for the next chat requests, in order; `mode` applies once they are used up."""
        with self._lock:
            self._queue.extend(modes)

    def next_mode(self) -> str:
        with self._lock:
            return self._queue.pop(0) if self._queue else self.mode

    def chats(self) -> list[LLMRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def record(self, request: LLMRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering; the port then refuses connections (an endpoint that is down). Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def wait_or_stop(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _echo(text: str) -> str:
    return text.replace("\u2019", "'")


def _answer_for(mode: str, user: str) -> str:
    if mode == "invent":
        return _echo(user).rstrip("\n") + "\n\n" + INVENTED
    if mode == "drop":
        return re.sub(r"^(`{3,})[^\n]*\n.*?^\1[ \t]*$\n?", "", _echo(user), count=1, flags=re.M | re.S)
    if mode == "wrapped":
        return "<think>\nThe user wants markdown.\n</think>\n\n````markdown\n" + _echo(user).rstrip("\n") + "\n````\n"
    if mode == "whitespace":
        out, fence = [], None
        for line in _echo(user).split("\n"):
            m = re.match(r"^(`{3,})", line)
            if fence is None and m:
                fence = m.group(1)
            elif fence is not None and line.startswith(fence) and not line.strip("`"):
                fence = None
            elif fence is not None:
                line = re.sub(r"^( +)", lambda s: s.group(1) * 2, line)
            out.append(line)
        return "\n".join(out)
    return _echo(user)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    llm: FakeLLM

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def _authorised(self) -> bool:
        key = self.server.llm.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        return False

    def do_GET(self) -> None:  # noqa: N802
        llm = self.server.llm
        llm.record(LLMRequest("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, None))
        if not self._authorised():
            return
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                          "owned_by": "fake"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802
        llm = self.server.llm
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        llm.record(LLMRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if not self._authorised():
            return
        if self.path != "/v1/chat/completions" or not isinstance(body, dict):
            self._json(404 if body is not None else 400, {"error": {"message": "bad request", "type": "invalid"}})
            return
        mode = llm.next_mode()
        if mode == "slow":
            llm.wait_or_stop(llm.slow_seconds)
            mode = "echo"
        if mode == "500":
            self._json(500, {"error": {"message": "The server had an error", "type": "server_error"}})
            return
        if mode == "429":
            self._json(429, {"error": {"message": "Rate limit reached", "type": "requests"}}, {"Retry-After": "7"})
            return
        if mode == "malformed":
            self._send(200, b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "# trunc', "application/json")
            return
        user = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
        content = _answer_for(mode, user)
        self._json(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model"),
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": len(user) // 4, "completion_tokens": len(content) // 4,
                                   "total_tokens": (len(user) + len(content)) // 4}})

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve_llm() -> Iterator[FakeLLM]:
    server = FakeLLM().start()
    try:
        yield server
    finally:
        server.stop()


if pytest is not None:

    @pytest.fixture
    def fake_llm() -> Iterator[FakeLLM]:
        """A fresh fake endpoint (mode echo) for one test."""
        with serve_llm() as server:
            yield server
