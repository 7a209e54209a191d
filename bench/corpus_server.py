"""A fast loopback server for benchmark corpora: uvicorn serving documents from memory with ETag/304.

No business logic. The tests' ThreadingHTTPServer handles a few hundred requests a second, which would
measure the server rather than the poller; uvicorn (httptools) handles thousands. It can listen on
several loopback addresses at once (Linux routes all of 127.0.0.0/8 to lo), so a corpus can stand for
many newspaper hosts, as a real deployment polls, instead of one host that per-host pacing serialises.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Document:
    body: bytes
    content_type: str
    etag: str


class CorpusServer:
    """Serves `documents` (path → Document) on each of `hosts` (loopback addresses) in a background thread."""

    def __init__(self, documents: Mapping[str, Document], hosts: Sequence[str] = ("127.0.0.1",)) -> None:
        self.documents = documents
        self._sockets: list[socket.socket] = []
        for host in hosts:
            listener = socket.socket()
            listener.bind((host, 0))
            self._sockets.append(listener)
        config = uvicorn.Config(self._app, log_level="warning", access_log=False, lifespan="off", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": self._sockets}, daemon=True)

    def url(self, path: str, host_index: int = 0) -> str:
        """The URL of `path` on the `host_index`-th of the hosts."""
        host, port = self._sockets[host_index].getsockname()
        return f"http://{host}:{port}{path}"

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        document = self.documents.get(scope["path"])
        headers = dict(scope["headers"])
        if document is None:
            await _answer(send, 404, [], b"")
        elif headers.get(b"if-none-match", b"").decode() == document.etag:
            await _answer(send, 304, [(b"etag", document.etag.encode())], b"")
        else:
            await _answer(send, 200, [(b"etag", document.etag.encode()),
                                      (b"content-type", document.content_type.encode())], document.body)


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
