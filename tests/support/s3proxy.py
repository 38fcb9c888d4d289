"""An HTTP proxy in front of a real S3 server that counts requests and bytes, and
can behave like Backblaze B2 for conditional PUTs (`If-Match` / `If-None-Match`
on PUT → 501 NotImplemented). Everything else is forwarded byte for byte (Host
kept, so signatures stay valid)."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

NOT_IMPLEMENTED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
    b"<Message>A header you provided implies functionality that is not implemented</Message></Error>"
)


class S3Proxy:
    def __init__(self, upstream: str, *, reject_conditional_put: bool = False) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.reject_conditional_put = reject_conditional_put
        self.rejected = 0
        self.requests: dict[str, int] = {}
        self.bytes_out = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                conditional = {"if-match", "if-none-match"} & {k.lower() for k in self.headers}
                with proxy._lock:
                    proxy.requests[self.command] = proxy.requests.get(self.command, 0) + 1
                if proxy.reject_conditional_put and self.command == "PUT" and conditional:
                    proxy.rejected += 1
                    self._reply(501, {"Content-Type": "application/xml"}, NOT_IMPLEMENTED)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                resp = conn.getresponse()
                data = resp.read()
                with proxy._lock:
                    proxy.bytes_out += len(data)
                headers = {
                    k: v
                    for k, v in resp.getheaders()
                    if k.lower() not in {"transfer-encoding", "content-length", "connection"}
                }
                self._reply(resp.status, headers, data)
                conn.close()

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def __enter__(self) -> S3Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class B2LikeProxy(S3Proxy):
    """Answers conditional PUTs the way Backblaze B2 does: 501 NotImplemented."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, reject_conditional_put=True)
