"""An S3 proxy that records every request: when, what, how big, and the CPU of a watched process.

Like tests/support/s3proxy.py (forwards byte for byte, Host kept so signatures
stay valid), plus a log the benchmarks read: a 304 poll is a GET answered 304,
an outcome write is a PUT of the document, and the watched process's CPU clock
read as each request arrives and as its answer leaves brackets the work the
process did between two requests.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from bench.probes import cpu_seconds


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    status: int
    bytes_in: int
    bytes_out: int
    started: float
    """time.time() when the request arrived."""
    ended: float
    """time.time() when the answer was sent."""
    cpu_started: float | None
    """The watched process's CPU seconds when the request arrived (None: nothing watched)."""
    cpu_ended: float | None

    def of(self, key: str) -> bool:
        return self.path.split("?", 1)[0].endswith("/" + key)


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.log: list[Request] = []
        self.watched: int | None = None
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def watch(self, pid: int | None) -> None:
        self.watched = pid

    def since(self, mark: int, key: str | None = None) -> list[Request]:
        """Requests logged after `mark` (a `len(log)` taken earlier), optionally for one key."""
        with self._lock:
            found = self.log[mark:]
        return [r for r in found if key is None or r.of(key)]

    def mark(self) -> int:
        with self._lock:
            return len(self.log)

    def _cpu(self) -> float | None:
        pid = self.watched
        if pid is None:
            return None
        try:
            return cpu_seconds(pid)
        except OSError:
            return None

    def _record(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(proxy: RecordingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            started, cpu_started = time.time(), proxy._cpu()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            self.send_response(resp.status)
            for key, value in resp.getheaders():
                if key.lower() not in {"transfer-encoding", "content-length", "connection"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()
            proxy._record(
                Request(
                    self.command,
                    self.path,
                    resp.status,
                    len(body),
                    len(data),
                    started,
                    time.time(),
                    cpu_started,
                    proxy._cpu(),
                )
            )

        do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _forward

    return Handler
