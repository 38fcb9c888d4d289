"""An HTTP proxy in front of a real S3 server that counts requests and bytes, and can
misbehave on purpose:

- like Backblaze B2 for conditional PUTs (`If-Match` / `If-None-Match` on PUT → 501);
- like a store that silently ignores `If-Match` on PUT (it writes anyway);
- hold the answer to a GET (fetched from S3 at once, answered later), to make a read
  old by the time its reader sees it;
- run a hook just before forwarding a PUT (another writer's edit landing between a
  reader's last check and its write).

Everything else is forwarded byte for byte (Host kept, so signatures stay valid).
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

NOT_IMPLEMENTED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
    b"<Message>A header you provided implies functionality that is not implemented</Message></Error>"
)
MAX_HOLD_SECONDS = 120.0


@dataclass
class Hold:
    """One GET whose answer is kept back until `release()` (or `MAX_HOLD_SECONDS`)."""

    path_suffix: str
    fetched: threading.Event = field(default_factory=threading.Event)
    """Set once S3 has answered the held GET (what the reader will see is fixed then)."""
    released: threading.Event = field(default_factory=threading.Event)
    body: bytes = b""
    """What S3 answered (the reader will see exactly this)."""

    def release(self) -> None:
        self.released.set()


class S3Proxy:
    def __init__(
        self,
        upstream: str,
        *,
        reject_conditional_put: bool = False,
        ignore_conditional_put: tuple[str, str] | None = None,
    ) -> None:
        """`ignore_conditional_put`: (access key, secret) to write conditional PUTs upstream
        unconditionally, as a store that ignores `If-Match` would."""
        target = urlsplit(upstream)
        self.upstream_url = upstream
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.reject_conditional_put = reject_conditional_put
        self.ignore_conditional_put = ignore_conditional_put
        self.rejected = 0
        self.ignored = 0
        self.requests: dict[str, int] = {}
        self.bytes_out = 0
        self.before_put: Callable[[str], None] | None = None
        """Called with the path of every PUT before it is forwarded (in the proxy's thread)."""
        self._holds: list[Hold] = []
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
                if self.command == "PUT" and conditional:
                    if proxy.reject_conditional_put:
                        proxy.rejected += 1
                        self._reply(501, {"Content-Type": "application/xml"}, NOT_IMPLEMENTED)
                        return
                    if proxy.ignore_conditional_put is not None:
                        proxy.ignored += 1
                        self._reply(200, {"ETag": proxy._put_unconditionally(self.path, body)}, b"")
                        return
                if self.command == "PUT" and proxy.before_put is not None:
                    proxy.before_put(self.path)
                hold = proxy._take_hold(self.command, self.path)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if hold is not None:
                    hold.body = data
                    hold.fetched.set()
                    hold.released.wait(MAX_HOLD_SECONDS)
                with proxy._lock:
                    proxy.bytes_out += len(data)
                headers = {
                    k: v
                    for k, v in resp.getheaders()
                    if k.lower() not in {"transfer-encoding", "content-length", "connection"}
                }
                self._reply(resp.status, headers, data)

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

    def hold_next_get(self, path_suffix: str) -> Hold:
        """Keep back the answer to the next GET of a path ending in `path_suffix`."""
        hold = Hold(path_suffix)
        with self._lock:
            self._holds.append(hold)
        return hold

    def release_all(self) -> None:
        with self._lock:
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.release()

    def _take_hold(self, command: str, path: str) -> Hold | None:
        if command != "GET":
            return None
        plain = unquote(urlsplit(path).path)
        with self._lock:
            for hold in self._holds:
                if plain.endswith(hold.path_suffix):
                    self._holds.remove(hold)
                    return hold
        return None

    def _put_unconditionally(self, path: str, body: bytes) -> str:
        import boto3

        assert self.ignore_conditional_put is not None
        key_id, secret = self.ignore_conditional_put
        bucket, _, key = unquote(urlsplit(path).path).lstrip("/").partition("/")
        client = boto3.client(
            "s3",
            endpoint_url=self.upstream_url,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
        return str(client.put_object(Bucket=bucket, Key=key, Body=body)["ETag"])

    def __enter__(self) -> S3Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_all()
        self.server.shutdown()
        self.server.server_close()


class B2LikeProxy(S3Proxy):
    """Answers conditional PUTs the way Backblaze B2 does: 501 NotImplemented."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, reject_conditional_put=True)
