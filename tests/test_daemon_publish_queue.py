"""The daemon's publish queue: debounced passes from one task, a last pass at shutdown, failed ones kept."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, cast

import pytest

from aggregator.config.load import Config, Settings
from aggregator.daemon.publish_queue import PublishQueue
from aggregator.errors import PublishError, PublishFailures
from aggregator.storage import Storage
from aggregator.publish.websub import notify_hub, read_pending
from tests.test_publish_websub import HubStub

CONFIG = Config(path=Path("feeds.toml"))
#: the recorder below never touches storage; the queue only hands it on
STORAGE = cast(Storage, object())


class _Recorder:
    """Stands in for publish_categories; records each pass and how many ran at once."""

    def __init__(self, fail_first: bool = False) -> None:
        self.passes: list[list[str] | None] = []
        self.max_running = 0
        self._running = 0
        self._lock = threading.Lock()
        self._fail_next = fail_first

    def __call__(self, storage: Storage, config: Config, categories: Iterable[str] | None) -> list[str]:
        with self._lock:
            self._running += 1
            self.max_running = max(self.max_running, self._running)
        try:
            time.sleep(0.05)
            if self._fail_next:
                self._fail_next = False
                raise PublishError("news", "publish: disk full")
            self.passes.append(None if categories is None else list(categories))
            return list(categories or [])
        finally:
            with self._lock:
                self._running -= 1


#: a short debounce, so the tests wait fractions of a second
DEBOUNCE_SECONDS = 0.2


def _run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, timeout=10))


def test_requests_within_the_debounce_become_one_pass() -> None:
    recorder = _Recorder()

    async def scenario() -> None:
        stop = asyncio.Event()
        queue = PublishQueue(STORAGE, CONFIG, stop, publish=recorder, debounce_seconds=DEBOUNCE_SECONDS)
        task = asyncio.create_task(queue.run())
        queue.request(["nantongribao"])
        await asyncio.sleep(0.05)
        queue.request(["emnews", "nantongribao"])
        await asyncio.sleep(0.5)
        queue.close()
        await task

    _run(scenario())
    assert recorder.passes == [["emnews", "nantongribao"]]


def test_a_request_for_everything_publishes_every_category() -> None:
    recorder = _Recorder()

    async def scenario() -> None:
        queue = PublishQueue(STORAGE, CONFIG, asyncio.Event(), publish=recorder, debounce_seconds=DEBOUNCE_SECONDS)
        task = asyncio.create_task(queue.run())
        queue.request(["emnews"])
        queue.request(None)
        queue.close()
        await task

    _run(scenario())
    assert recorder.passes == [None]


def test_passes_never_overlap() -> None:
    recorder = _Recorder()

    async def scenario() -> None:
        queue = PublishQueue(STORAGE, CONFIG, asyncio.Event(), publish=recorder, debounce_seconds=DEBOUNCE_SECONDS)
        task = asyncio.create_task(queue.run())
        for index in range(6):
            queue.request([f"c{index}"])
            await asyncio.sleep(0.12)
        queue.close()
        await task

    _run(scenario())
    assert recorder.max_running == 1
    assert sorted(c for p in recorder.passes for c in p or []) == [f"c{i}" for i in range(6)]


def test_a_stop_cuts_the_debounce_short_and_close_publishes_what_is_pending() -> None:
    recorder = _Recorder()
    took: list[float] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        queue = PublishQueue(STORAGE, CONFIG, stop, publish=recorder, debounce_seconds=DEBOUNCE_SECONDS)
        task = asyncio.create_task(queue.run())
        started = time.monotonic()
        stop.set()
        queue.request(["news"])
        queue.close()
        await task
        took.append(time.monotonic() - started)

    _run(scenario())
    assert recorder.passes == [["news"]]
    assert took[0] < 0.15  # no 0.2 s debounce wait


def test_categories_of_a_failed_pass_stay_pending(caplog: pytest.LogCaptureFixture) -> None:
    recorder = _Recorder(fail_first=True)

    async def scenario() -> None:
        queue = PublishQueue(STORAGE, CONFIG, asyncio.Event(), publish=recorder, debounce_seconds=DEBOUNCE_SECONDS)
        task = asyncio.create_task(queue.run())
        queue.request(["news"])
        await asyncio.sleep(0.4)
        queue.request(["emnews"])
        queue.close()
        await task

    _run(scenario())
    assert recorder.passes == [["emnews", "news"]]
    assert "publish: disk full; publishing again in 60s" in caplog.text


def _refuse(hub_url: str, topic: str) -> None:
    raise PublishError(topic, f"publish: websub hub refused {topic} (HTTP 503)")


def _hub_config(tmp_path: Path, hub_url: str | None) -> Config:
    return Config(path=tmp_path / "feeds.toml", settings=Settings(output_dir=Path("feeds"), websub_hub=hub_url))


async def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "condition not met within 5 s"
        await asyncio.sleep(0.02)


def test_pings_a_hub_missed_are_retried_on_a_timer_without_a_publish(tmp_path: Path) -> None:
    topic = "https://news.example/feeds/nantongribao.atom"
    hub = HubStub()
    recorder = _Recorder()
    try:
        config = _hub_config(tmp_path, hub.url)
        assert notify_hub(tmp_path / "feeds", hub.url, [topic], _refuse) == [topic]

        async def scenario() -> None:
            queue = PublishQueue(STORAGE, config, asyncio.Event(), publish=recorder, debounce_seconds=DEBOUNCE_SECONDS,
                                 ping_retry_seconds=0.1)
            task = asyncio.create_task(queue.run())
            await _wait_until(lambda: bool(hub.pings))
            queue.close()
            await task

        _run(scenario())
    finally:
        hub.stop()
    assert hub.topics() == [topic]
    assert read_pending(tmp_path / "feeds" / ".websub-pending.json") == []
    assert recorder.passes == []


@pytest.mark.parametrize(("hub_url", "pending"), [(None, True), ("http://127.0.0.1:9/hub", False)])
def test_the_retry_timer_does_nothing_without_a_hub_or_a_pending_ping(
    tmp_path: Path, hub_url: str | None, pending: bool
) -> None:
    retries: list[Path] = []

    def record_retry(output_dir: Path, settings: Settings) -> list[str]:
        retries.append(output_dir)
        return []

    if pending:
        notify_hub(tmp_path / "feeds", "http://127.0.0.1:9/hub", ["https://news.example/feeds/a.atom"], _refuse)

    async def scenario() -> None:
        queue = PublishQueue(STORAGE, _hub_config(tmp_path, hub_url), asyncio.Event(), publish=_Recorder(),
                             retry_pings=record_retry, debounce_seconds=DEBOUNCE_SECONDS, ping_retry_seconds=0.02)
        task = asyncio.create_task(queue.run())
        await asyncio.sleep(0.3)
        queue.close()
        await task

    _run(scenario())
    assert retries == []


def test_a_retry_stuck_on_a_slow_hub_does_not_hold_up_publishing(tmp_path: Path) -> None:
    retry_started, release = threading.Event(), threading.Event()

    def stuck_retry(output_dir: Path, settings: Settings) -> list[str]:
        retry_started.set()
        release.wait(timeout=5)
        return []

    notify_hub(tmp_path / "feeds", "http://127.0.0.1:9/hub", ["https://news.example/feeds/a.atom"], _refuse)
    recorder = _Recorder()

    async def scenario() -> None:
        queue = PublishQueue(STORAGE, _hub_config(tmp_path, "http://127.0.0.1:9/hub"), asyncio.Event(),
                             publish=recorder, retry_pings=stuck_retry, debounce_seconds=DEBOUNCE_SECONDS,
                             ping_retry_seconds=0.02)
        task = asyncio.create_task(queue.run())
        await _wait_until(retry_started.is_set)
        queue.request(["news"])
        await _wait_until(lambda: bool(recorder.passes))
        release.set()
        queue.close()
        await task

    try:
        _run(scenario())
    finally:
        release.set()
    assert recorder.passes == [["news"]]


class _Failing:
    """Stands in for publish_categories: fails its first pass with `error`, then records passes."""

    def __init__(self, error: Exception) -> None:
        self.error: Exception | None = error
        self.passes: list[list[str] | None] = []

    def __call__(self, storage: Storage, config: Config, categories: Iterable[str] | None) -> list[str]:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.passes.append(None if categories is None else list(categories))
        return list(categories or [])


def test_an_unexpected_error_leaves_the_publisher_running_and_retries_its_categories(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publish = _Failing(ValueError("All strings must be XML compatible"))

    async def scenario() -> None:
        stop = asyncio.Event()
        queue = PublishQueue(STORAGE, CONFIG, stop, publish=publish, debounce_seconds=0.2, retry_seconds=0.3)
        task = asyncio.create_task(queue.run())
        queue.request(["nantongribao"])
        await asyncio.sleep(1.2)
        assert not task.done()
        queue.close()
        await task

    _run(scenario())
    assert publish.passes == [["nantongribao"]]
    assert "publish: unexpected error; publishing again" in caplog.text and "Traceback" in caplog.text


def test_a_feed_failing_to_publish_is_overdue_after_the_limit_until_it_is_published() -> None:
    publish = _Failing(PublishFailures(["yangzhou"], "publish: cannot write yangzhou.atom"))
    seen: dict[str, list[str]] = {}

    async def scenario() -> None:
        stop = asyncio.Event()
        queue = PublishQueue(STORAGE, CONFIG, stop, publish=publish, debounce_seconds=0.2, retry_seconds=0.5)
        task = asyncio.create_task(queue.run())
        queue.request(["nantongribao", "yangzhou"])
        await asyncio.sleep(0.35)  # the debounce, then the failed pass
        seen["failing"], seen["within_limit"] = queue.overdue(0.0), queue.overdue(60.0)
        await asyncio.sleep(0.8)  # the retry publishes it
        seen["after_retry"] = queue.overdue(0.0)
        queue.close()
        await task

    _run(scenario())
    assert seen == {"failing": ["yangzhou"], "within_limit": [], "after_retry": []}
    assert publish.passes == [["yangzhou"]]  # only what failed is published again
