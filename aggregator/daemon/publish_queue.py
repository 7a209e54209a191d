"""The daemon's publishing: changed categories collected from polls, written by one task, debounced.

One task means one writer of feed files at any time; the debounce turns a burst of polls finishing
together into one publish pass. Rendering and writing run in a thread so polls keep their timers.
Beside it, a timer retries the WebSub pings a hub missed (publish/websub.py), so a hub that was down hears
about the last changes even when nothing new is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from aggregator.config.load import Config, Settings
from aggregator.errors import AggregatorError, PublishFailures
from aggregator.publish.layout import output_dir_of
from aggregator.publish.run import publish_categories
from aggregator.publish.layout import PENDING_PINGS_FILE
from aggregator.storage import Storage
from aggregator.publish.websub import retry_pending_pings

log = logging.getLogger("aggregator.daemon.scheduler")

#: polls finishing within this long of each other are published in one pass
PUBLISH_DEBOUNCE_SECONDS = 1.0
#: a failed pass (disk full, store locked) is retried after this long, with its categories kept
PUBLISH_RETRY_SECONDS = 60.0
#: pings a WebSub hub missed are sent again this often, whether or not anything is published
WEBSUB_RETRY_INTERVAL_SECONDS = 60.0

RetryPings = Callable[[Path, Settings], list[str]]


class PublishQueue:
    """Categories waiting to be republished; `run()` is the task that publishes them.

    The timings default to the module's constants; tests pass shorter ones (and their own publish and
    ping-retry functions) instead of patching the module.
    """

    def __init__(
        self,
        storage: Storage,
        config: Config,
        stop_wanted: asyncio.Event,
        *,
        publish: Callable[[Storage, Config, Iterable[str] | None], list[str]] = publish_categories,
        retry_pings: RetryPings = retry_pending_pings,
        debounce_seconds: float = PUBLISH_DEBOUNCE_SECONDS,
        retry_seconds: float = PUBLISH_RETRY_SECONDS,
        ping_retry_seconds: float = WEBSUB_RETRY_INTERVAL_SECONDS,
    ) -> None:
        self._storage = storage
        self._publish = publish
        self._retry_pings = retry_pings
        self._debounce_seconds = debounce_seconds
        self._retry_seconds = retry_seconds
        self._ping_retry_seconds = ping_retry_seconds
        #: replaced by the daemon on a config reload; the next pass uses the new one
        self.config = config
        #: set once the daemon stops: the debounce is cut short and `run()` ends after a last pass
        self._stop_wanted = stop_wanted
        self._pending: set[str] = set()
        self._everything = False
        self._wanted = asyncio.Event()
        self._closing = False
        #: feed name → monotonic time its publishing started failing ("*": a whole pass failed); replaced,
        #: never mutated, so the HTTP thread reads a consistent snapshot
        self._failing_since: dict[str, float] = {}

    def overdue(self, longer_than_seconds: float) -> list[str]:
        """Feeds whose publishing has been failing for longer than `longer_than_seconds` (for /healthz)."""
        now = time.monotonic()
        return sorted(name for name, since in self._failing_since.items() if now - since > longer_than_seconds)

    def request(self, categories: Iterable[str] | None) -> None:
        """Republish `categories` soon; None means every category (after a config change)."""
        self._remember(categories)
        self._wanted.set()

    def close(self) -> None:
        """Let `run()` publish what is pending and return."""
        self._closing = True
        self._wanted.set()

    async def run(self) -> None:
        # its own task: a retry waiting on a slow hub never holds up a publish pass
        retrying = asyncio.create_task(self._retry_pings_periodically(), name="websub retry")
        try:
            while True:
                await self._wanted.wait()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_wanted.wait(), self._debounce_seconds)
                self._wanted.clear()
                await self._publish_pending()
                if self._closing and not self._wanted.is_set():
                    return
        finally:
            retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retrying

    async def _retry_pings_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._ping_retry_seconds)
            config = self.config
            output_dir = output_dir_of(config)
            if not config.settings.websub_hub or not (output_dir / PENDING_PINGS_FILE).exists():
                continue
            try:
                await asyncio.to_thread(self._retry_pings, output_dir, config.settings)
            except OSError as e:  # the pending file unreadable or unwritable: try again next time
                log.warning("publish: websub pings not retried: %s", e)

    def _remember(self, categories: Iterable[str] | None) -> None:
        if categories is None:
            self._everything = True
        else:
            self._pending.update(categories)

    async def _publish_pending(self) -> None:
        if not (self._everything or self._pending):
            return
        categories = None if self._everything else sorted(self._pending)
        self._everything, self._pending = False, set()
        try:
            written = await asyncio.to_thread(self._publish, self._storage, self.config, categories)
        except Exception as e:  # the publisher outlives any failure: it retries what failed (issue 10)
            if isinstance(e, AggregatorError):
                log.error("%s; publishing again in %.0fs", e, self._retry_seconds)  # e names its stage
            else:
                log.exception("publish: unexpected error; publishing again in %.0fs", self._retry_seconds)
            failed = _retry_set(e, categories)
            self._remember(failed)
            self._record_failures(categories, failed)
            asyncio.get_running_loop().call_later(self._retry_seconds, self._wanted.set)
            return
        self._record_failures(categories, [])
        if written:
            log.info("publish: rewrote %s", ", ".join(written))

    def _record_failures(self, requested: list[str] | None, failed: list[str] | None) -> None:
        """Start the clock of feeds that now fail, stop that of those published."""
        now = time.monotonic()
        failed_names = {"*"} if failed is None else set(failed)
        if requested is None and failed is None:
            kept = dict(self._failing_since)
        elif requested is None:
            kept = {}
        else:
            kept = {name: since for name, since in self._failing_since.items()
                    if name not in requested or name in failed_names}
        self._failing_since = {**{name: now for name in failed_names}, **kept}


def _retry_set(error: Exception, requested: list[str] | None) -> list[str] | None:
    """What to publish again after `error`: only the feeds that failed when the publish says which and
    they are categories; everything (None) when all.atom, feeds.opml or the index failed, or it cannot say."""
    if isinstance(error, PublishFailures) and requested is not None:
        if all(name in requested for name in error.failed):
            return list(error.failed)
        return None
    return requested
