"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for tests.

It runs ``http.server`` in a daemon thread, so async tests (the client's event loop keeps running)
and subprocesses (a real port) can both talk to it. Each POST /v1/chat/completions takes the next
scripted :class:`Reply` from the queue, or asks ``responder(request)`` when the queue is empty.
Faults are replies too: ``Reply.rate_limited(7)``, ``Reply.error(500)``, ``Reply.slow(2.0)``,
``Reply(content='{"te')`` (truncated JSON), ``Reply(finish_reason="length")``.

Run standalone for manual checks: ``python tests/llm_server.py '{"text": "hi"}'``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LlmServer", "RecordedRequest", "Reply"]

# a delayed reply never outlives the test by more than this, even if stop() is not reached
_MAX_DELAY_S = 30.0


@dataclass
class Reply:
    """One scripted answer. ``body`` (raw bytes or a JSON object) replaces the generated one."""

    content: str | None = "{}"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | dict[str, Any] | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cost: float | None = None
    delay_s: float = 0.0

    @classmethod
    def json(cls, obj: Any, **kw: Any) -> Reply:
        return cls(content=json.dumps(obj), **kw)

    @classmethod
    def rate_limited(cls, retry_after: str | float | None = None) -> Reply:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls(status=429, headers=headers,
                   body={"error": {"message": "rate limit reached", "type": "rate_limit", "code": "429"}})

    @classmethod
    def error(cls, status: int, message: str = "server error") -> Reply:
        return cls(status=status, body={"error": {"message": message, "type": "error", "code": str(status)}})

    @classmethod
    def slow(cls, delay_s: float, content: str = "{}") -> Reply:
        return cls(content=content, delay_s=delay_s)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []


class LlmServer:
    """``with LlmServer() as srv: srv.push(Reply.json({...})); client(base_url=srv.base_url)``."""

    def __init__(self, responder: Callable[[RecordedRequest], Reply] | None = None,
                 *, models: tuple[str, ...] = ("test-model",)) -> None:
        self.responder = responder
        self.models = models
        self.replies: list[Reply] = []
        self.requests: list[RecordedRequest] = []
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LlmServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                server._handle(self, "POST")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes delayed replies so their threads end now
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LlmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ scripting
    def push(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # ------------------------------------------------------------------ serving
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in h.headers.items()}
        req = RecordedRequest(method=method, path=path, headers=headers, body=body)
        with self._lock:
            self.hits[path] += 1
            self.requests.append(req)
        if method == "GET" and path.endswith("/models"):
            self._send(h, 200, {"object": "list",
                                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "test"}
                                         for m in self.models]})
        elif method == "POST" and path.endswith("/chat/completions"):
            self._chat(h, req)
        else:
            self._send(h, 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})

    def _next_reply(self, req: RecordedRequest) -> Reply:
        with self._lock:
            if self.replies:
                return self.replies.pop(0)
        if self.responder is not None:
            return self.responder(req)
        return Reply.error(400, "llm_server: no scripted reply left")

    def _chat(self, h: BaseHTTPRequestHandler, req: RecordedRequest) -> None:
        reply = self._next_reply(req)
        if reply.delay_s:
            self._stop.wait(min(reply.delay_s, _MAX_DELAY_S))
            if self._stop.is_set():
                return
        if reply.body is not None:
            self._send(h, reply.status, reply.body, reply.headers)
            return
        usage: dict[str, Any] = {"prompt_tokens": reply.prompt_tokens,
                                 "completion_tokens": reply.completion_tokens,
                                 "total_tokens": reply.prompt_tokens + reply.completion_tokens}
        if reply.cost is not None:
            usage["cost"] = reply.cost
        model = req.body.get("model", "test-model") if isinstance(req.body, dict) else "test-model"
        payload = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                         "message": {"role": "assistant", "content": reply.content}}],
            "usage": usage,
        }
        self._send(h, reply.status, payload, reply.headers)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes | dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    content = sys.argv[1] if len(sys.argv) > 1 else '{"text": ""}'
    srv = LlmServer(lambda _req: Reply(content=content)).start()
    print(srv.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()
