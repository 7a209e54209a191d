"""WebSub pings against a loopback hub stub: only changed feeds are pinged, a failing hub never blocks publishing."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.errors import PublishError
from aggregator.models import Item, ItemChange
from aggregator.publish.run import publish_categories
from aggregator.storage import Storage, open_storage
from aggregator.publish.websub import notify_hub, ping_hub, read_pending, retry_pending_pings

BASE_URL = "https://news.example/"
T0 = datetime(2022, 1, 23, 16, 0, tzinfo=UTC)


class HubStub:
    """An http.server thread that records each POSTed form and answers with `status`."""

    def __init__(self) -> None:
        self.status = 204
        self.pings: list[dict[str, list[str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                stub.pings.append(parse_qs(body.decode("ascii")))
                self.send_response(stub.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/hub"

    def topics(self) -> list[str]:
        return [topic for ping in self.pings for topic in ping["hub.url"]]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def hub() -> Iterator[HubStub]:
    stub = HubStub()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    opened = open_storage(str(tmp_path / "store.db"))
    try:
        yield opened
    finally:
        opened.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hub"  # nothing listens there once the socket is closed


def make_config(tmp_path: Path, hub_url: str) -> Config:
    return Config(
        path=tmp_path / "feeds.toml",
        settings=Settings(base_url=BASE_URL, output_dir=Path("feeds"), websub_hub=hub_url,
                          timeout=timedelta(seconds=5)),
        categories={"nantongribao": CategoryConfig(title="南通日报新闻"), "yangzhou": CategoryConfig(title="扬州日报新闻")},
        sources=(SourceConfig(name="nt", url="https://example.org/nt.xml", categories=("nantongribao",)),),
    )


def make_item(n: int, category: str, **changes: object) -> Item:
    item = Item(
        article_id=f"NW{n:018d}", title=f"新闻 {n}", url=f"https://finews.example/a/{n}.html", html=f"<p>{n}</p>",
        published=T0 + timedelta(minutes=n), updated=T0 + timedelta(minutes=n), categories=frozenset({category}),
        sources=frozenset({"nt"}), content_hash=f"h{n}",
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


def store(storage: Storage, items: list[Item], action: str = "insert") -> None:
    storage.apply_update([ItemChange(action, i, "nt", i.content_hash) for i in items], None)  # type: ignore[arg-type]


def feed_topics(*names: str) -> list[str]:
    return [f"{BASE_URL}feeds/{name}.{ext}" for name in names for ext in ("atom", "json")]


def test_a_ping_is_a_publish_form_post(hub: HubStub) -> None:
    ping_hub(hub.url, f"{BASE_URL}feeds/nantongribao.atom", timeout_seconds=5, user_agent="aggregator-test")
    assert hub.pings == [{"hub.mode": ["publish"], "hub.url": [f"{BASE_URL}feeds/nantongribao.atom"]}]


def test_a_hub_answering_an_error_status_is_a_publish_error(hub: HubStub) -> None:
    hub.status = 500
    with pytest.raises(PublishError, match=r"refused .* \(HTTP 500\)"):
        ping_hub(hub.url, f"{BASE_URL}feeds/x.atom", timeout_seconds=5, user_agent="t")


def test_an_unreachable_hub_is_a_publish_error_with_its_cause() -> None:
    with pytest.raises(PublishError, match="unreachable") as caught:
        ping_hub(closed_port_url(), f"{BASE_URL}feeds/x.atom", timeout_seconds=5, user_agent="t")
    assert caught.value.__cause__ is not None


def test_republishing_pings_the_hub_for_changed_feeds_only(tmp_path: Path, storage: Storage, hub: HubStub) -> None:
    config = make_config(tmp_path, hub.url)
    store(storage, [make_item(1, "nantongribao"), make_item(2, "yangzhou")])
    publish_categories(storage, config)
    assert sorted(hub.topics()) == sorted(feed_topics("nantongribao", "yangzhou", "all"))

    hub.pings.clear()
    publish_categories(storage, config)
    assert hub.pings == []

    store(storage, [make_item(3, "yangzhou")])
    assert publish_categories(storage, config, ["yangzhou"]) == ["yangzhou"]
    assert sorted(hub.topics()) == sorted(feed_topics("yangzhou", "all"))


def test_a_failing_hub_does_not_block_publishing_and_is_retried(tmp_path: Path, storage: Storage, hub: HubStub) -> None:
    config = make_config(tmp_path, hub.url)
    store(storage, [make_item(1, "nantongribao")])
    hub.status = 503
    assert publish_categories(storage, config) == ["nantongribao", "yangzhou"]
    assert (tmp_path / "feeds" / "nantongribao.atom").exists()
    pending = read_pending(tmp_path / "feeds" / ".websub-pending.json")
    assert sorted(pending) == sorted(feed_topics("nantongribao", "yangzhou", "all"))
    assert len(hub.pings) == 1

    hub.status = 204
    hub.pings.clear()
    assert retry_pending_pings(tmp_path / "feeds", config.settings) == []
    assert sorted(hub.topics()) == sorted(pending)
    assert not (tmp_path / "feeds" / ".websub-pending.json").exists()


def test_a_dead_hub_costs_one_attempt_per_publish(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path, closed_port_url())
    store(storage, [make_item(1, "nantongribao")])
    assert publish_categories(storage, config) == ["nantongribao", "yangzhou"]
    store(storage, [make_item(2, "yangzhou")])
    assert publish_categories(storage, config) == ["yangzhou"]
    pending = read_pending(tmp_path / "feeds" / ".websub-pending.json")
    assert sorted(pending) == sorted(feed_topics("nantongribao", "yangzhou", "all"))


def test_pending_topics_are_pinged_before_new_ones_and_kept_from_the_first_failure(tmp_path: Path) -> None:
    calls: list[str] = []

    def flaky(hub_url: str, topic: str) -> None:
        calls.append(topic)
        if topic == "t3":
            raise PublishError(topic, "publish: websub hub refused t3 (HTTP 502)")

    assert notify_hub(tmp_path, "http://hub", ["t1", "t2", "t3", "t4"], flaky) == ["t3", "t4"]
    assert calls == ["t1", "t2", "t3"]
    calls.clear()
    assert notify_hub(tmp_path, "http://hub", ["t5", "t3"], lambda hub, topic: calls.append(topic)) == []
    assert calls == ["t3", "t4", "t5"]


def test_concurrent_notifications_keep_every_missed_topic(tmp_path: Path) -> None:
    """The daemon's retry and a publish pass notify from two threads; neither may drop the other's topics."""
    first_ping = threading.Event()

    def slow_refusal(hub_url: str, topic: str) -> None:
        first_ping.set()
        time.sleep(0.2)
        raise PublishError(topic, f"publish: websub hub refused {topic} (HTTP 503)")

    def refusal(hub_url: str, topic: str) -> None:
        raise PublishError(topic, f"publish: websub hub refused {topic} (HTTP 503)")

    retry = threading.Thread(target=notify_hub, args=(tmp_path, "http://hub", ["t1"], slow_refusal))
    retry.start()
    assert first_ping.wait(timeout=5)
    notify_hub(tmp_path, "http://hub", ["t2"], refusal)
    retry.join(timeout=5)
    assert sorted(read_pending(tmp_path / ".websub-pending.json")) == ["t1", "t2"]


def test_an_unreadable_pending_file_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".websub-pending.json").write_text("{not json")
    assert read_pending(tmp_path / ".websub-pending.json") == []
    assert "unreadable" in caplog.text
