"""feeds.opml: an OPML 2.0 subscription list readers can import in one click."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from aggregator.config.load import CategoryConfig, Config, Settings
from aggregator.publish.opml import render_opml


def make_config() -> Config:
    return Config(
        path=Path("/srv/feeds.toml"),
        settings=Settings(base_url="https://news.example/sub"),
        categories={
            "nantongribao": CategoryConfig(title="南通日报新闻", description="南通 & 周边 <本地>"),
            "yangzhou": CategoryConfig(title="扬州日报新闻"),
        },
    )


def test_every_feed_is_an_outline_in_the_given_order() -> None:
    opml = ET.fromstring(render_opml(make_config(), ["yangzhou", "nantongribao", "all"]))
    assert opml.tag == "opml" and opml.get("version") == "2.0"
    assert opml.findtext("head/title")
    outlines = opml.findall("body/outline")
    assert [(o.get("type"), o.get("text"), o.get("xmlUrl"), o.get("htmlUrl")) for o in outlines] == [
        ("rss", "扬州日报新闻", "https://news.example/sub/feeds/yangzhou.atom", "https://news.example/sub/#yangzhou"),
        ("rss", "南通日报新闻", "https://news.example/sub/feeds/nantongribao.atom",
         "https://news.example/sub/#nantongribao"),
        ("rss", "全部新闻", "https://news.example/sub/feeds/all.atom", "https://news.example/sub/#all"),
    ]


def test_descriptions_are_escaped_and_round_trip() -> None:
    opml = ET.fromstring(render_opml(make_config(), ["nantongribao"]))
    outline = opml.find("body/outline")
    assert outline is not None and outline.get("description") == "南通 & 周边 <本地>"


def test_the_list_carries_no_clock_so_it_changes_only_with_the_feed_set() -> None:
    config = make_config()
    assert render_opml(config, ["nantongribao"]) == render_opml(config, ["nantongribao"])
    assert b"dateModified" not in render_opml(config, ["nantongribao"])
