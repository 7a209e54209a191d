"""Render a feed's subscription document as JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/).

Pure and deterministic, like the Atom twin it mirrors: same entries, ids and dates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import tzinfo

from aggregator.config.load import Config
from aggregator.models import Item
from aggregator.publish.atom import (
    FEED_LANGUAGE,
    FeedDocument,
    entry_id,
    entry_links,
    feed_title,
    item_zones,
    sort_newest_first,
)
from aggregator.publish.layout import file_url, json_file
from aggregator.publish.xml_text import xml_text

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


def render_json_feed(document: FeedDocument, items: Sequence[Item], config: Config) -> bytes:
    feed: dict[str, object] = {
        "version": JSON_FEED_VERSION,
        "title": xml_text(document.title),
        "home_page_url": document.alternate_url,
        "feed_url": file_url(config.settings.base_url, json_file(document.name)),
    }
    if document.subtitle:
        feed["description"] = xml_text(document.subtitle)
    feed["language"] = FEED_LANGUAGE
    if document.hub_url:
        feed["hubs"] = [{"type": "WebSub", "url": document.hub_url}]
    zone_of = item_zones(config)
    feed["items"] = [_json_item(item, config, zone_of(item)) for item in sort_newest_first(items)]
    return (json.dumps(feed, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _json_item(item: Item, config: Config, zone: tzinfo) -> dict[str, object]:
    entry: dict[str, object] = {"id": entry_id(item.article_id)}
    alternate, via = entry_links(item, config)
    if alternate:
        entry["url"] = xml_text(alternate)
    if via:
        entry["external_url"] = xml_text(via)
    entry["title"] = xml_text(item.title)
    entry["content_html"] = xml_text(item.html)
    if item.summary:
        entry["summary"] = xml_text(item.summary)
    if item.published is not None:
        entry["date_published"] = item.published.astimezone(zone).isoformat()
    entry["date_modified"] = item.updated.astimezone(zone).isoformat()
    if item.author:
        entry["authors"] = [{"name": xml_text(item.author)}]
    entry["tags"] = [xml_text(feed_title(config, term)) for term in sorted(item.categories)]
    return entry
