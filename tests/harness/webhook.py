"""A Slack-style incoming webhook on loopback that records every post, and can be told to
misbehave for its first posts (issue 13, item 7):

- hang:   reads the post, then answers nothing for `hang_s` (beyond the plugin's 3 s timeout)
- error:  500
- close:  reads the post and closes the connection without an answer
- ok:     200 "ok" (every post after the scripted ones)

`posts` holds (behaviour, body) of every post, the body parsed as JSON or kept as the raw text
when it is not JSON (a test asserts it always is). The URL carries a secret token that must
never appear in a log.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "SECRETWEBHOOKTOKEN"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that drops a kept-alive connection is no news here


class WebhookServer:
    def __init__(self, script: tuple[str, ...] = (), hang_s: float = 20.0):
        self.script = list(script)
        self.hang_s = hang_s
        self.posts: list[tuple[str, dict | str]] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8", "replace")
                try:
                    parsed: dict | str = json.loads(body)
                except ValueError:
                    parsed = body
                with hook._lock:
                    behaviour = hook.script.pop(0) if hook.script else "ok"
                    hook.posts.append((behaviour, parsed))
                hook._answer(self, behaviour)

            def log_message(self, *args):
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/services/T0/B0/{SECRET}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)

    def __enter__(self) -> "WebhookServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, h: BaseHTTPRequestHandler, behaviour: str) -> None:
        if behaviour == "hang":
            time.sleep(self.hang_s)
            h.close_connection = True
        elif behaviour == "close":
            h.close_connection = True
        else:
            status, body = (500, b"internal error") if behaviour == "error" else (200, b"ok")
            h.send_response(status)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

    def texts(self, behaviour: str | None = None) -> list[str]:
        """The `text` of every post (answered with `behaviour`, if given)."""
        with self._lock:
            return [p["text"] for b, p in self.posts
                    if isinstance(p, dict) and "text" in p and behaviour in (None, b)]
