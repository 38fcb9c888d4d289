"""An HTTP proxy in front of a real S3 server that behaves like Backblaze B2 for
conditional PUTs: `If-Match` / `If-None-Match` on PUT → 501 NotImplemented.
Everything else is forwarded byte for byte (Host kept, so signatures stay valid)."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

NOT_IMPLEMENTED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
    b"<Message>A header you provided implies functionality that is not implemented</Message></Error>"
)


class B2LikeProxy:
    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.rejected = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                conditional = {"if-match", "if-none-match"} & {k.lower() for k in self.headers}
                if self.command == "PUT" and conditional:
                    proxy.rejected += 1
                    self._reply(501, {"Content-Type": "application/xml"}, NOT_IMPLEMENTED)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                resp = conn.getresponse()
                data = resp.read()
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

    def __enter__(self) -> B2LikeProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
