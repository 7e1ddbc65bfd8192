"""A real HTTP server on 127.0.0.1 whose answers each test scripts: bodies (with Range
support), error statuses, connections cut mid-file, and silence (for timeouts)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    """One scripted answer: `status` alone, a `body` (cut after `cut_at` bytes if set),
    or `hang_s` seconds of silence."""

    status: int = 200
    body: bytes = b""
    cut_at: int | None = None
    hang_s: float = 0.0


@dataclass
class Script:
    """Answers per path, consumed in order (the last one repeats), and the requests seen."""

    routes: dict[str, list[Answer]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def serve(self, path: str, *answers: Answer) -> None:
        self.routes[path] = list(answers)

    def next_answer(self, path: str) -> Answer | None:
        answers = self.routes.get(path)
        if not answers:
            return None
        return answers.pop(0) if len(answers) > 1 else answers[0]


class _Handler(BaseHTTPRequestHandler):
    script: Script

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.script.requests.append((self.path, self.headers.get("Range")))
        answer = self.script.next_answer(self.path)
        if answer is None:
            self.send_error(404)
        elif answer.hang_s:
            time.sleep(answer.hang_s)
            self.close_connection = True
        elif answer.status >= 400:
            self.send_error(answer.status)
        else:
            self._send_body(answer)

    def _send_body(self, answer: Answer) -> None:
        data, start = answer.body, 0
        requested = self.headers.get("Range")
        if requested and requested.startswith("bytes=") and requested.endswith("-"):
            start = int(requested[len("bytes=") : -1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if answer.cut_at is None:
            self.wfile.write(data[start:])
            return
        self.wfile.write(data[start : answer.cut_at])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


class LocalServer:
    """Context manager: a threaded server on a free port; `url(path)` builds addresses."""

    def __init__(self) -> None:
        self.script = Script()
        handler = type("Handler", (_Handler,), {"script": self.script})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
