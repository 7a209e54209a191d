"""SharedHostLimiter against the real PostgreSQL: two limiters (two workers) on one store share each host's
concurrency, minimum gap and Retry-After."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.cluster.hosts import SharedHostLimiter
from aggregator.fetch.hosts import HostDeferredError
from aggregator.storage import SqlStorage, open_storage
from tests.conftest import fresh_store_url

LEASE = timedelta(seconds=5)


@pytest.fixture
def stores(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[SqlStorage, SqlStorage]]:
    """Two connections pools on one store, as two worker processes have."""
    with fresh_store_url("postgresql", tmp_path, request) as url:
        first, second = open_storage(url), open_storage(url)
        assert isinstance(first, SqlStorage) and isinstance(second, SqlStorage)
        try:
            yield first, second
        finally:
            first.close()
            second.close()


def test_two_workers_together_keep_the_hosts_concurrency_and_gap(stores: tuple[SqlStorage, SqlStorage]) -> None:
    gap = timedelta(milliseconds=40)
    limiters = [SharedHostLimiter(store.engine, f"w{i}", 2, gap, LEASE) for i, store in enumerate(stores)]
    active, peak, starts = 0, 0, []

    async def request(limiter: SharedHostLimiter) -> None:
        nonlocal active, peak
        async with limiter.slot("News.Example.org"):
            starts.append(time.monotonic())
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.15)
            active -= 1

    async def main() -> None:
        await asyncio.gather(*(request(limiters[i % 2]) for i in range(10)))

    asyncio.run(main())
    assert peak == 2
    # ten starts need at least nine gaps between them, whichever worker made them
    assert max(starts) - min(starts) >= 9 * gap.total_seconds() * 0.9
    with stores[0].engine.connect() as connection:
        from sqlalchemy import text

        assert connection.execute(text("SELECT count(*) FROM host_slots")).scalar_one() == 0


def test_a_retry_after_seen_by_one_worker_holds_back_the_other(stores: tuple[SqlStorage, SqlStorage]) -> None:
    first = SharedHostLimiter(stores[0].engine, "w0", 1, None, LEASE)
    second = SharedHostLimiter(stores[1].engine, "w1", 1, None, LEASE)
    first.defer("busy.example.org", 1.0)

    async def main() -> float:
        with pytest.raises(HostDeferredError):
            async with second.slot("busy.example.org", max_deferral_seconds=0.2):
                pass
        started = time.monotonic()
        async with second.slot("busy.example.org", max_deferral_seconds=5):
            waited = time.monotonic() - started
        async with second.slot("other.example.org", max_deferral_seconds=0.2):
            pass  # another host is not deferred
        return waited

    assert 0.6 < asyncio.run(main()) < 3.0
