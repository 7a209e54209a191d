"""JSON Feed 1.1 twin of a subscription document: same ids, dates and order as the Atom."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.models import Item
from aggregator.publish.archive import plan_archive
from aggregator.publish.atom import describe_feed
from aggregator.publish.json_feed import render_json_feed

T0 = datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)


def make_config(hub: str | None = None) -> Config:
    return Config(
        path=Path("/srv/feeds.toml"),
        settings=Settings(base_url="https://news.example/", websub_hub=hub),
        categories={"nantongribao": CategoryConfig(title="南通日报新闻", description="南通日报")},
        sources=(SourceConfig(name="nt", url="https://example.org/a", categories=("nantongribao",),
                              timezone="Asia/Shanghai"),),
    )


def make_item(n: int, **fields: object) -> Item:
    values: dict[str, object] = {
        "article_id": f"NW{n}", "title": f"新闻 {n}", "url": f"https://finews.example/{n}.html",
        "html": f"<p>{n}</p>", "published": T0 + timedelta(hours=n), "updated": T0 + timedelta(hours=n),
        "categories": frozenset({"nantongribao"}), "sources": frozenset({"nt"}), "content_hash": "h",
    }
    return Item(**{**values, **fields})  # type: ignore[arg-type]


def render(items: list[Item], config: Config | None = None) -> dict[str, object]:
    config = config or make_config()
    document = describe_feed(config, "nantongribao", plan_archive(len(items), 100))
    feed = json.loads(render_json_feed(document, items, config))
    assert isinstance(feed, dict)
    return feed


def test_the_feed_declares_json_feed_1_1_with_its_own_url() -> None:
    feed = render([make_item(1)])
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "南通日报新闻"
    assert feed["description"] == "南通日报"
    assert feed["feed_url"] == "https://news.example/feeds/nantongribao.json"
    assert feed["home_page_url"] == "https://news.example/c/nantongribao.html"
    assert "hubs" not in feed


def test_items_mirror_the_atom_entries() -> None:
    feed = render([make_item(1, author="记者", summary="摘要"), make_item(2, url=None, published=None)])
    assert feed["items"] == [
        {
            "id": "tag:aggregator,2022:NW2",
            "url": "https://news.example/a/NW2.html",
            "title": "新闻 2",
            "content_html": "<p>2</p>",
            "date_modified": "2022-01-24T02:48:09+08:00",
            "tags": ["南通日报新闻"],
        },
        {
            "id": "tag:aggregator,2022:NW1",
            "url": "https://news.example/a/NW1.html",
            "external_url": "https://finews.example/1.html",
            "title": "新闻 1",
            "content_html": "<p>1</p>",
            "summary": "摘要",
            "date_published": "2022-01-24T01:48:09+08:00",
            "date_modified": "2022-01-24T01:48:09+08:00",
            "authors": [{"name": "记者"}],
            "tags": ["南通日报新闻"],
        },
    ]


def test_a_configured_hub_is_listed() -> None:
    assert render([], make_config("https://hub.example/"))["hubs"] == [{"type": "WebSub", "url": "https://hub.example/"}]
