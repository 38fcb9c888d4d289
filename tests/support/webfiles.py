"""A tiny HTTP/1.1 file server on 127.0.0.1 whose answers a test chooses: status,
headers (a lying Content-Length, a redirect), and how slowly the body comes."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_length: bool = True
    """False: no Content-Length (the body ends when the connection closes)."""
    stall: float = 0.0
    """Seconds to wait after the headers before the body."""


class WebFiles:
    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> WebFiles:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the port and end every answer still being given (a stalled one too)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode()
            self.requests.append(path)
            answer = self.answers.get(path, Answer(status=404, body=b"not found"))
            head = [f"HTTP/1.1 {answer.status} X", "Connection: close"]
            head += [f"{k}: {v}" for k, v in answer.headers.items()]
            if answer.content_length:
                head.append(f"Content-Length: {len(answer.body)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            await writer.drain()
            if answer.stall:
                await asyncio.sleep(answer.stall)
            writer.write(answer.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
