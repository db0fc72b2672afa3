"""A deterministic local OpenAI-compatible chat-completions server for testing the API harness's own logic.

Scripted answers, latency and injected faults (429 with Retry-After, 500, hangs past the client's
timeout, malformed HTTP bodies, schema-violating or truncated replies), usage fields, and a request log
to assert on. It tests *our* retry/cache/budget logic; it never replaces the real server
(``llamafactory-cli api``) in the integration tests. Standard library only (http.server, one thread per
connection), bound to 127.0.0.1 on a free port.

How a request finds its script: its *key* is the first ``[[marker]]`` in its text parts, else the first
16 hex digits of the SHA-256 of its first image data URL, else "-". The n-th request (0-based) with a
key gets ``script[key][min(n, len - 1)]``; a key without script goes to ``responder(body, key, n)``
(default: ``default_reply``).

Usage (tests and benchmark scripts):
    with ScriptedServer(latency_s=0.2, script={"item-7": [Reply(status=429, headers={"Retry-After": "0.1"}),
                                                          Reply(content='{"x": 1}')]}) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...
        server.count()          # requests received
        server.requests[0].key  # the log

    # in its own process (benchmarks: no GIL shared with the client); GET /v1/_stats -> {"count", "max_in_flight"}
    python tests/support/scripted_server.py --latency 0.2 --content '{"features": []}'   # prints "PORT <n>"
    with ScriptedServerProcess(latency=0.2, content='{"features": []}') as server:   # the same, from Python
        server.base_url, server.stats()
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MARKER = re.compile(r"\[\[([^\[\]]+)\]\]")


@dataclass(frozen=True)
class Reply:
    """One scripted response."""

    content: str | None = '{"answer": "ok"}'  # the assistant message text
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None  # sent verbatim instead of a chat-completion JSON (malformed bodies)
    delay_s: float | None = None  # overrides the server's latency (a hang: longer than the client timeout)
    finish_reason: str = "stop"
    prompt_tokens: int | None = None  # None: the server's default usage
    completion_tokens: int | None = None
    include_usage: bool = True


@dataclass(frozen=True)
class LoggedRequest:
    path: str
    key: str
    n: int  # how many earlier requests had this key
    body: dict | None
    authorization: str | None
    status: int
    t: float  # monotonic arrival time


def request_key(body: dict | None) -> str:
    """The script key of a chat-completions body (marker, else image hash, else "-")."""
    if not isinstance(body, dict):
        return "-"
    texts: list[str] = []
    images: list[str] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    texts.append(part.get("text", ""))
                elif part.get("type") == "image_url":
                    images.append(part.get("image_url", {}).get("url", ""))
    for text in texts:
        if m := MARKER.search(text):
            return m.group(1)
    if images:
        return hashlib.sha256(images[0].encode()).hexdigest()[:16]
    return "-"


def default_reply(body: dict, key: str, n: int) -> Reply:
    return Reply()


class ScriptedServer:
    def __init__(self, script: dict[str, list[Reply]] | None = None,
                 responder: Callable[[dict, str, int], Reply] = default_reply, latency_s: float = 0.0,
                 prompt_tokens: int = 1000, completion_tokens: int = 100, model: str = "scripted-model"):
        self.script = dict(script or {})
        self.responder = responder
        self.latency_s = latency_s
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.model = model
        self.requests: list[LoggedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most chat requests being answered at the same time
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "ScriptedServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms Nagle/delayed-ACK stall

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [
                        {"id": server.model, "object": "model", "created": 0, "owned_by": "scripted"}]}).encode())
                elif self.path.rstrip("/").endswith("/_stats"):
                    with server._lock:
                        stats = {"count": len(server.requests), "max_in_flight": server.max_in_flight}
                    self._send(200, json.dumps(stats).encode())
                elif self.path.rstrip("/").endswith("/health"):
                    self._send(200, b"{}")
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = None
                status, headers, payload = server._answer(self.path, body, self.headers.get("Authorization"))
                self._send(status, payload, headers)

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 128

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes scripted hangs
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- answers ---------------------------------------------------------------------------------

    def _answer(self, path: str, body: dict | None, authorization: str | None) -> tuple[int, dict, bytes]:
        key = request_key(body)
        with self._lock:
            n = self._seen[key]
            self._seen[key] += 1
        if body is None:
            reply = Reply(status=400, content=None)
        elif key in self.script:
            replies = self.script[key]
            reply = replies[min(n, len(replies) - 1)]
        else:
            reply = self.responder(body, key, n)
        with self._lock:
            self.requests.append(LoggedRequest(path, key, n, body, authorization, reply.status, time.monotonic()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        delay = self.latency_s if reply.delay_s is None else reply.delay_s
        try:
            if delay > 0:
                self._stop.wait(delay)
        finally:
            with self._lock:
                self.in_flight -= 1
        if reply.raw_body is not None:
            return reply.status, reply.headers, reply.raw_body
        if reply.status != 200:
            message = {429: "rate limited", 500: "internal error", 400: "bad request"}.get(reply.status, "error")
            return reply.status, reply.headers, json.dumps({"error": {"message": message, "type": "scripted",
                                                                      "code": reply.status}}).encode()
        completion = {
            "id": f"chatcmpl-{key}-{n}", "object": "chat.completion", "created": 0,
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content},
                         "finish_reason": reply.finish_reason}],
        }
        if reply.include_usage:
            p = self.prompt_tokens if reply.prompt_tokens is None else reply.prompt_tokens
            c = self.completion_tokens if reply.completion_tokens is None else reply.completion_tokens
            completion["usage"] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        return 200, reply.headers, json.dumps(completion).encode()

    # --- assertions helpers ----------------------------------------------------------------------

    def count(self, key: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if key is None or r.key == key)

    def keys(self) -> Counter[str]:
        with self._lock:
            return Counter(r.key for r in self.requests)

    def wait_for(self, n: int, timeout_s: float = 30.0) -> bool:
        """Block until at least n requests were received (True) or the timeout passes (False)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.count() >= n:
                return True
            time.sleep(0.01)
        return False


class ScriptedServerProcess:
    """This server in its own process (``main`` below), every request answered with ``content``."""

    def __init__(self, latency: float, content: str):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--latency", str(latency),
                                      "--content", content], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline().split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict:
        """GET /v1/_stats: {"count": requests received, "max_in_flight": most requests open at once}."""
        import urllib.request

        with urllib.request.urlopen(f"{self.base_url}/_stats", timeout=5) as r:
            return json.loads(r.read())

    def __enter__(self) -> "ScriptedServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="serve scripted chat completions on 127.0.0.1 until killed")
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--content", default=Reply().content, help="the reply text of every request")
    ns = ap.parse_args()
    reply = Reply(content=ns.content)
    server = ScriptedServer(responder=lambda body, key, n: reply, latency_s=ns.latency).start()
    print(f"PORT {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
