"""What a feeds.toml edit changed, as the daemon applies and logs it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.config.diff import ConfigDiff, diff_configs, keep_restart_settings

CATEGORIES = {"nantongribao": CategoryConfig(title="南通日报新闻"), "jiangsu": CategoryConfig(title="江苏")}


def _source(name: str, **changes: object) -> SourceConfig:
    return SourceConfig.model_validate(
        {"name": name, "url": f"https://example.com/{name}.xml", "categories": ("nantongribao",), **changes}
    )


def _config(
    *sources: SourceConfig,
    categories: dict[str, CategoryConfig] = CATEGORIES,
    settings: Settings | None = None,
) -> Config:
    return Config(
        path=Path("feeds.toml"), settings=settings or Settings(), categories=categories, sources=sources
    )


def test_identical_configurations_differ_in_nothing() -> None:
    config = _config(_source("a"), _source("b"))

    diff = diff_configs(config, _config(_source("a"), _source("b")))

    assert diff == ConfigDiff()
    assert diff.is_empty()
    assert diff.describe() == []


def test_sources_added_removed_and_changed_are_named_with_the_changed_keys() -> None:
    old = _config(_source("kept"), _source("gone"), _source("edited"))
    new = _config(_source("kept"), _source("edited", interval="5m", enabled=False), _source("fresh"))

    diff = diff_configs(old, new)

    assert diff.added_sources == ("fresh",)
    assert diff.removed_sources == ("gone",)
    assert diff.changed_sources == {"edited": ("interval", "enabled")}
    assert diff.describe() == [
        "sources added: fresh",
        "sources removed: gone",
        "sources changed: edited (interval, enabled)",
    ]


def test_reordering_sources_changes_nothing() -> None:
    assert diff_configs(_config(_source("a"), _source("b")), _config(_source("b"), _source("a"))).is_empty()


def test_categories_and_settings_changes_are_reported() -> None:
    old = _config(categories=CATEGORIES)
    new = _config(
        categories={
            "nantongribao": CategoryConfig(title="南通日报"),
            "shanghai": CategoryConfig(title="上海"),
        },
        settings=Settings(interval=timedelta(minutes=5), max_items_per_feed=50),
    )

    diff = diff_configs(old, new)

    assert (diff.added_categories, diff.removed_categories, diff.changed_categories) == (
        ("shanghai",),
        ("jiangsu",),
        ("nantongribao",),
    )
    assert diff.changed_settings == ("interval", "max_items_per_feed")
    assert diff.describe() == [
        "categories added: shanghai",
        "categories removed: jiangsu",
        "categories changed: nantongribao",
        "settings changed: interval, max_items_per_feed",
    ]


def test_a_changed_cleaning_rule_counts_as_a_source_change() -> None:
    old = _config(_source("a"))
    new = _config(_source("a", clean={"remove": [".ad"]}))

    assert diff_configs(old, new).changed_sources == {"a": ("clean",)}


def test_only_category_and_settings_changes_republish_every_feed() -> None:
    base = _config(_source("a"))

    assert not diff_configs(base, _config(_source("a", interval="5m"), _source("b"))).changes_feeds()
    assert diff_configs(base, _config(_source("a"), categories={"nantongribao": CATEGORIES["nantongribao"]})
                        ).changes_feeds()
    assert diff_configs(base, _config(_source("a"), settings=Settings(max_items_per_feed=5))).changes_feeds()


def test_store_and_listen_changes_wait_for_a_restart_and_everything_else_applies() -> None:
    running = _config(_source("a"), settings=Settings(store="store/a.db", listen="127.0.0.1:8080"))
    edited = _config(
        _source("a"),
        settings=Settings(store="store/b.db", listen="0.0.0.0:9000", max_items_per_feed=5),
    )

    applied, kept = keep_restart_settings(running, edited)

    assert kept == {"store": "store/a.db", "listen": "127.0.0.1:8080"}
    assert (applied.settings.store, applied.settings.listen) == ("store/a.db", "127.0.0.1:8080")
    assert applied.settings.max_items_per_feed == 5
    assert diff_configs(running, applied).changed_settings == ("max_items_per_feed",)


def test_an_edit_that_leaves_store_and_listen_alone_is_applied_as_it_is() -> None:
    running = _config(_source("a"))
    edited = _config(_source("a", interval="5m"))

    assert keep_restart_settings(running, edited) == (edited, {})
