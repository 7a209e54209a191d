"""The daemon's HTTP side: the feeds app (with /healthz) plus /metrics, served by uvicorn in its own thread.

No business logic. A thread of its own keeps /healthz honest: if the scheduler's event loop stalls,
the probe still answers, with 503, instead of timing out with it.
"""

from __future__ import annotations

import socket
import threading

import uvicorn

from aggregator.errors import AggregatorError
from aggregator.ops.metrics import METRICS_CONTENT_TYPE, Metrics
from aggregator.serve.app import ASGIApp, Receive, Scope, Send, parse_listen, respond

#: seconds uvicorn gives open connections to finish at shutdown
GRACEFUL_SHUTDOWN_SECONDS = 2
#: how long stop() waits for the thread; past it the process exits anyway (a daemon thread)
THREAD_JOIN_SECONDS = 5.0


def bind_listener(listen: str) -> socket.socket:
    """Bind the HTTP socket before serving, so an address in use is a clear start-up error."""
    try:
        host, port = parse_listen(listen)
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family)
    except ValueError as e:
        raise AggregatorError(str(e)) from e
    except OSError as e:
        raise AggregatorError(f"serve: cannot listen on {listen}") from e


def listener_url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def create_metrics_app(metrics: Metrics) -> ASGIApp:
    """GET /metrics: the Prometheus text exposition of `metrics`."""

    async def serve_metrics(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", METRICS_CONTENT_TYPE.encode())]
        await respond(send, scope, 200, headers, metrics.render_metrics())

    return serve_metrics


class SwappableApp:
    """Forwards to `app`, which a config reload replaces; the assignment is atomic across threads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class HttpThread:
    """uvicorn serving `app` on an already bound socket, in a thread with its own event loop.

    Outside the main thread uvicorn installs no signal handlers, so SIGTERM stays the daemon's.
    """

    def __init__(self, app: ASGIApp, listener: socket.socket) -> None:
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, name="aggregator-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=THREAD_JOIN_SECONDS)
