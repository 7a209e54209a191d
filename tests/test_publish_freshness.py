"""A feed's freshness lifetime: the shortest poll interval of the enabled sources feeding it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.publish.freshness import shortest_interval


def make_config(*sources: SourceConfig) -> Config:
    return Config(
        path=Path("/srv/feeds.toml"),
        settings=Settings(interval=timedelta(minutes=15)),
        categories={"nantongribao": CategoryConfig(title="南通日报新闻"), "yangzhou": CategoryConfig(title="扬州日报新闻")},
        sources=sources,
    )


def source(name: str, categories: tuple[str, ...] = ("nantongribao",), **fields: object) -> SourceConfig:
    return SourceConfig(name=name, url=f"https://example.org/{name}.xml", categories=categories, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sources", "feed", "expected"),
    [
        ((), "nantongribao", timedelta(minutes=15)),
        ((source("a", interval=timedelta(minutes=10)),), "nantongribao", timedelta(minutes=10)),
        ((source("a", interval=timedelta(minutes=10)), source("b", interval=timedelta(minutes=3))),
         "nantongribao", timedelta(minutes=3)),
        ((source("a", interval=timedelta(minutes=10)), source("b", interval=timedelta(minutes=3), enabled=False)),
         "nantongribao", timedelta(minutes=10)),
        ((source("a", interval=timedelta(minutes=10)), source("b", ("yangzhou",), interval=timedelta(minutes=3))),
         "nantongribao", timedelta(minutes=10)),
        ((source("a", interval=timedelta(minutes=10)), source("b", ("yangzhou",), interval=timedelta(minutes=3))),
         "all", timedelta(minutes=3)),
        ((source("a", interval=timedelta(minutes=10)), source("b", ("yangzhou",), interval=timedelta(minutes=3))),
         None, timedelta(minutes=3)),
        ((source("a", ("yangzhou",)),), "nantongribao", timedelta(minutes=15)),
        ((source("m", (), category_from="medium", interval=timedelta(minutes=5)),), "taizhou", timedelta(minutes=5)),
        ((source("a", cron="*/5 * * * *"),), "nantongribao", timedelta(minutes=5)),
        ((source("a", cron="0 6,18 * * *"),), "nantongribao", timedelta(hours=12)),
        ((source("a", cron="30 7 * * mon-fri"),), "nantongribao", timedelta(days=1)),
    ],
    ids=["no-source-default", "one-source", "fastest-wins", "disabled-ignored", "other-category-ignored",
         "all-feed-any-source", "index-any-source", "unfed-category-default", "filed-by-medium-feeds-any",
         "cron-every-5-minutes", "cron-twice-a-day", "cron-weekdays"],
)
def test_the_fastest_enabled_source_feeding_a_feed_sets_its_lifetime(
    sources: tuple[SourceConfig, ...], feed: str | None, expected: timedelta
) -> None:
    assert shortest_interval(make_config(*sources), feed) == expected
