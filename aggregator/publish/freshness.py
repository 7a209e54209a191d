"""How long a published feed stays fresh: the shortest poll interval of the sources that feed it.

Pure. `serve` sends it as `Cache-Control: max-age`: a reader polling us more often than our
fastest source is polled cannot see anything new, and one polling less often misses nothing.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aggregator.config.load import Config, SourceConfig
from aggregator.publish.layout import ALL_FEED

#: fire times of a cron source looked at to find its shortest gap: enough to cover one period of
#: any everyday pattern (hours of a day, days of a week) without walking years of a rare one
CRON_FIRES_SAMPLED = 64
#: a fixed start for that walk, so the answer does not depend on the clock
_CRON_SAMPLE_START = datetime(2024, 1, 1, tzinfo=UTC)


def shortest_interval(config: Config, feed: str | None) -> timedelta:
    """The shortest poll interval among the enabled sources that feed `feed` (None or "all": every
    source; sources filing items by medium may feed any category). settings.interval when none do."""
    intervals = [
        interval
        for source in config.sources
        if source.enabled and _may_feed(source, feed)
        if (interval := _poll_interval(config, source)) is not None
    ]
    return min(intervals, default=config.settings.interval)


def _may_feed(source: SourceConfig, feed: str | None) -> bool:
    return (
        feed in (None, ALL_FEED)
        or source.categories == "auto"
        or source.category_from is not None
        or feed in source.categories
    )


def _poll_interval(config: Config, source: SourceConfig) -> timedelta | None:
    """The source's interval, or for a cron source the shortest gap between two of its fire
    times (None if it never fires)."""
    if source.cron is None:
        return config.interval_of(source)
    # imported only for cron sources; config.values.check_cron has already loaded it to validate them
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(source.cron, timezone=ZoneInfo(config.timezone_of(source)))
    fires: list[datetime] = []
    fire = trigger.get_next_fire_time(None, _CRON_SAMPLE_START)
    while fire is not None and len(fires) < CRON_FIRES_SAMPLED:
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    gaps = [later - earlier for earlier, later in itertools.pairwise(fires)]
    return min(gaps, default=None)
