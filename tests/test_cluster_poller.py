"""A cluster worker's next poll times: cron sources keep their cron times, as with one process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.cluster.poller import cron_fires
from aggregator.config.load import parse_config


def test_cron_sources_get_their_cron_times_and_interval_sources_none(tmp_path: Path) -> None:
    config = parse_config(
        '[categories.news]\ntitle = "News"\n\n'
        '[[sources]]\nname = "evening"\nurl = "http://example.com/a.xml"\ncategories = ["news"]\n'
        'cron = "30 18 * * *"\ntimezone = "Asia/Shanghai"\n\n'
        '[[sources]]\nname = "often"\nurl = "http://example.com/b.xml"\ncategories = ["news"]\ninterval = "5m"\n',
        tmp_path / "feeds.toml")
    fires = cron_fires(config)
    next_fire = fires(config.source("evening"))
    later = datetime.now(UTC) + timedelta(days=3)

    assert fires(config.source("often")) is None
    assert next_fire is not None
    fire = next_fire(later)
    assert fire is not None and later <= fire <= later + timedelta(days=1, seconds=30)
    # 18:30 in Shanghai (UTC+8) is 10:30 UTC, plus a jitter of up to 30 s
    at = fire.astimezone(UTC)
    assert 0 <= (at - at.replace(hour=10, minute=30, second=0, microsecond=0)).total_seconds() <= 30
