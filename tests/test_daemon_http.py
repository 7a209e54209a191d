"""The daemon's HTTP side: binding the listen address, /metrics, the swappable app, the uvicorn thread."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from aggregator.daemon.http import HttpThread, SwappableApp, bind_listener, create_metrics_app, listener_url
from aggregator.errors import AggregatorError
from aggregator.ops.metrics import Metrics
from aggregator.models import UpdateOutcome
from aggregator.serve.app import ASGIApp, Receive, Scope, Send, respond


async def _feeds_v1(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, scope, 200, [(b"content-type", b"text/plain")], f"v1 {scope['path']}".encode())


async def _feeds_v2(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, scope, 200, [(b"content-type", b"text/plain")], f"v2 {scope['path']}".encode())


def test_bind_listener_on_port_zero_picks_a_free_port() -> None:
    with bind_listener("127.0.0.1:0") as listener:
        port = listener.getsockname()[1]
        assert port > 0
        assert listener_url(listener) == f"http://127.0.0.1:{port}/"


def test_bind_listener_takes_ipv6_in_brackets() -> None:
    try:
        listener = bind_listener("[::1]:0")
    except AggregatorError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    with listener:
        assert listener_url(listener) == f"http://[::1]:{listener.getsockname()[1]}/"


def test_an_address_in_use_is_a_clear_start_up_error() -> None:
    with bind_listener("127.0.0.1:0") as taken:
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(AggregatorError, match=rf"^serve: cannot listen on {listen}: OSError: "):
            bind_listener(listen)


def test_a_listen_address_that_is_not_host_port_is_refused() -> None:
    with pytest.raises(AggregatorError, match=r"^serve: listen address must be HOST:PORT"):
        bind_listener("8080")


def test_metrics_are_served_in_prometheus_text_format() -> None:
    metrics = Metrics()
    metrics.record_outcome(UpdateOutcome("nantong", "new", inserted=2), datetime.now(UTC))

    with (
        _served(create_metrics_app(metrics)) as url,
        urllib.request.urlopen(url + "metrics", timeout=5) as response,
    ):
        assert response.headers["Content-Type"].startswith("text/plain")
        assert 'aggregator_items_inserted_total{source="nantong"} 2.0' in response.read().decode()


def test_a_swapped_app_answers_the_next_request() -> None:
    feeds = SwappableApp(_feeds_v1)
    with _served(feeds) as url:
        assert _get(url + "feeds/nantongribao.atom") == (200, b"v1 /feeds/nantongribao.atom")
        feeds.app = _feeds_v2
        assert _get(url + "feeds/nantongribao.atom") == (200, b"v2 /feeds/nantongribao.atom")


def test_http_thread_stops_promptly_and_closes_the_port() -> None:
    with _served(_feeds_v1) as url:
        assert _get(url + "healthz")[0] == 200
        started = time.monotonic()
    assert time.monotonic() - started < 3
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(url + "healthz", timeout=1)


@contextlib.contextmanager
def _served(app: ASGIApp) -> Iterator[str]:
    """Serve `app` on a free loopback port; it listens from the start, so early requests just queue."""
    with bind_listener("127.0.0.1:0") as listener:
        thread = HttpThread(app, listener)
        thread.start()
        try:
            yield listener_url(listener)
        finally:
            thread.stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
