"""A fault-injecting proxy on loopback in front of a JobManager's REST API (issue 13, item 1).

Every request is forwarded to the real API, except that while faults are on, each request
gets one of them with a given probability (seeded, so a run can be repeated):

- delay:      answered after `delay_s`, beyond the client's timeout
- error:      500 with Flink's error body
- truncated:  the real answer, cut in half, the connection closed
- malformed:  200 with a body that is not the JSON asked for
- nan:        the real answer with every metric value made "NaN" or a word
- vanish:     404 "job not found" for a request about one job (a job that vanishes mid-window)
- reset:      the connection reset (RST) before anything is answered

`counts` says how many of each were injected.
"""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("delay", "error", "truncated", "malformed", "nan", "vanish", "reset")

_JOB_PATH = re.compile(r"^/jobs/[0-9a-f]{32}(/|$|\?)")
_ID = re.compile(r"/(?:[0-9a-f]{32}|[^/]*:\d+-[0-9a-f]+)(?=/|$)")


def _kind_of(path: str) -> str:
    """A request's kind: its path with job, vertex and TaskManager ids as `*`, no query."""
    return _ID.sub("/*", path.split("?", 1)[0])


class FaultyRest:
    def __init__(self, upstream: str = "", delay_s: float = 4.5, seed: int = 13):
        self.upstream = upstream.rstrip("/")
        self.delay_s = delay_s
        self.rate = 0.0
        self.kinds: tuple[str, ...] = ()
        self.counts: Counter[str] = Counter()
        # (epoch seconds, method and path, fault) of every fault injected.
        self.injected: list[tuple[float, str, str]] = []
        self.requests = 0
        # Requests by path, ids and query left out (`/jobs/*/vertices/*/subtasks/metrics`).
        self.by_kind: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                proxy._handle(self)

            do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-rest", daemon=True)

    def __enter__(self) -> "FaultyRest":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, kinds: tuple[str, ...] = KINDS, rate: float = 0.1) -> None:
        """Faults on: each request gets one of `kinds` with probability `rate`."""
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}")
        with self._lock:
            self.kinds, self.rate = tuple(kinds), rate

    def heal(self) -> None:
        with self._lock:
            self.kinds, self.rate = (), 0.0

    # ---- one request -----------------------------------------------------------------------

    def _fault_for(self, method: str, path: str) -> str | None:
        with self._lock:
            self.requests += 1
            self.by_kind[_kind_of(path)] += 1
            if not self.kinds or self._random.random() >= self.rate:
                return None
            fitting = [k for k in self.kinds
                       if (k != "nan" or "metrics" in path) and (k != "vanish" or _JOB_PATH.match(path))]
            if not fitting:
                return None
            # The kind injected least so far that fits: every kind gets its turns, whatever the
            # mix of requests (a job path comes seldom once vertices are not asked one by one).
            kind = min(fitting, key=lambda k: (self.counts[k], self.kinds.index(k)))
            self.counts[kind] += 1
            self.injected.append((time.time(), f"{method} {path}", kind))
            return kind

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        fault = self._fault_for(h.command, h.path)
        if fault == "reset":
            # SO_LINGER 0: close() sends RST instead of FIN.
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            h.connection.close()
            return
        if fault == "error":
            return self._send(h, 500, json.dumps({"errors": ["Internal server error.", "<stack trace>"]}).encode())
        if fault == "malformed":
            return self._send(h, 200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        if fault == "vanish":
            job = h.path.split("/")[2][:32]
            message = f"org.apache.flink.runtime.rest.NotFoundException: Job {job} not found"
            return self._send(h, 404, json.dumps({"errors": [message]}).encode())
        if fault == "delay":
            time.sleep(self.delay_s)
        status, answer = self._forward(h, body)
        if fault == "nan":
            answer = _spoil_values(answer, self._random)
        if fault == "truncated":
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(answer)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(answer[: len(answer) // 2])
            h.close_connection = True
            return
        self._send(h, status, answer)

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes | None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.upstream + h.path, data=body, method=h.command,
                                         headers={"Content-Type": h.headers.get("Content-Type", "application/json")})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (OSError, ValueError) as e:  # ValueError: no upstream yet
            return 502, json.dumps({"errors": [f"proxy: upstream {self.upstream!r}: {e}"]}).encode()

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            h.close_connection = True  # the client gave up (a delay beyond its timeout)


def _spoil_values(answer: bytes, rnd: random.Random) -> bytes:
    """Every metric value ("value", or an aggregate's min/max/avg/sum) made NaN or a word."""
    try:
        data = json.loads(answer)
    except ValueError:
        return answer

    def spoil(node):
        if isinstance(node, dict):
            return {k: (rnd.choice(["NaN", "n/a", "Infinity"]) if k in ("value", "min", "max", "avg", "sum")
                        else spoil(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [spoil(v) for v in node]
        return node

    return json.dumps(spoil(data)).encode()
