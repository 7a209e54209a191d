"""A fast loopback server for benchmark corpora: uvicorn serving documents from memory with ETag/304.

No business logic. The tests' ThreadingHTTPServer handles a few hundred requests a second, which would
measure the server rather than the poller; uvicorn (httptools) handles thousands.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

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
    """Serves `documents` (path → Document) on 127.0.0.1 in a background thread."""

    def __init__(self, documents: Mapping[str, Document]) -> None:
        self.documents = documents
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(self._app, log_level="warning", access_log=False, lifespan="off", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}{path}"

    def __enter__(self) -> CorpusServer:
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
