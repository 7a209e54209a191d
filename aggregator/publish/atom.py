"""Render one Atom 1.0 document (a subscription document or an RFC 5005 archive page) with feedgen.

Pure and deterministic: the same items and config give the same bytes, whatever the clock says.
The feed's `updated` is its newest entry's `updated`, so it moves only when content changed.
Output validates against aggregator/schemas/atom.rng (RFC 4287 Appendix B) and parses with
feedparser without bozo.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from aggregator import __version__
from aggregator.config.load import Config
from aggregator.models import Item
from aggregator.publish.archive import ArchivePlan
from aggregator.publish.layout import ALL_FEED, archive_file, atom_file, file_url, site_url
from aggregator.publish.page_layout import article_key
from aggregator.publish.stories import STORY_SCHEME, EntryStory, RelatedLink
from aggregator.publish.xml_text import xml_text, xml_text_or_none

#: RFC 4151 tag URIs: stable whatever base_url the feeds move to
TAG_PREFIX = "tag:aggregator,2022:"
#: RFC 5005 §4 namespace of the fh:archive marker
HISTORY_NS = "http://purl.org/syndication/history/1.0"
ATOM_MEDIA_TYPE = "application/atom+xml"
ALL_FEED_TITLE = "全部新闻"
#: a feed with no entries still needs an `updated`; the epoch keeps it deterministic
EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)
FEED_LANGUAGE = "zh-CN"



@dataclass(frozen=True, slots=True)
class FeedDocument:
    """What one Atom document is: which feed, its own URL and its RFC 5005 neighbours."""

    #: category id or "all"
    name: str
    title: str
    subtitle: str | None
    self_url: str
    #: the feed's section of the HTML index
    alternate_url: str
    #: the subscription document; set on archive pages only (RFC 5005 `current`)
    current_url: str | None = None
    prev_archive_url: str | None = None
    next_archive_url: str | None = None
    #: WebSub hub announced with rel="hub" (subscription documents only)
    hub_url: str | None = None

    @property
    def is_archive(self) -> bool:
        return self.current_url is not None


def feed_title(config: Config, name: str) -> str:
    if name == ALL_FEED:
        return ALL_FEED_TITLE
    category = config.categories.get(name)
    return category.title if category is not None else name


def feed_subtitle(config: Config, name: str) -> str | None:
    category = config.categories.get(name)
    return category.description if category is not None else None


def describe_feed(config: Config, name: str, plan: ArchivePlan, page: int | None = None) -> FeedDocument:
    """The subscription document of `name` (page None) or its archive page `page`."""
    base_url = config.settings.base_url
    current_url = file_url(base_url, atom_file(name))
    title, subtitle = feed_title(config, name), feed_subtitle(config, name)
    alternate_url = site_url(base_url, "" if name == ALL_FEED else f"c/{name}.html")
    if page is None:
        last_page = plan.page_count
        return FeedDocument(
            name, title, subtitle, current_url, alternate_url,
            prev_archive_url=file_url(base_url, archive_file(name, last_page)) if last_page else None,
            hub_url=config.settings.websub_hub,
        )
    plan.page_range(page)  # validates the page number
    return FeedDocument(
        name, title, subtitle, file_url(base_url, archive_file(name, page)), alternate_url,
        current_url=current_url,
        prev_archive_url=file_url(base_url, archive_file(name, page - 1)) if page > 1 else None,
        next_archive_url=file_url(base_url, archive_file(name, page + 1)) if page < plan.page_count else None,
    )


def render_atom(
    document: FeedDocument, items: Sequence[Item], config: Config, stories: Mapping[str, EntryStory] | None = None
) -> bytes:
    """The Atom document holding `items`, newest first, as UTF-8 bytes; `stories` marks the entries of
    a story (publish/stories.py): its id as a category, the other papers' copies as related links."""
    entries = sort_newest_first(items)
    updated = max((item.updated for item in entries), default=EMPTY_FEED_UPDATED)

    fg = FeedGenerator()
    fg.id(feed_id(document.name))
    fg.title(xml_text(document.title))
    if document.subtitle:
        fg.subtitle(xml_text(document.subtitle))
    fg.updated(updated.astimezone(ZoneInfo(config.settings.timezone)))
    fg.language(FEED_LANGUAGE)
    # RFC 4287 §4.1.1: a feed needs an author unless every entry has one; the newspaper is ours
    fg.author({"name": xml_text(document.title)})
    fg.generator("aggregator", version=__version__)
    fg.link(href=xml_text(document.self_url), rel="self", type=ATOM_MEDIA_TYPE)
    fg.link(href=xml_text(document.alternate_url), rel="alternate", type="text/html")
    if document.hub_url:
        fg.link(href=document.hub_url, rel="hub")
    if document.current_url:
        fg.link(href=document.current_url, rel="current", type=ATOM_MEDIA_TYPE)
    if document.prev_archive_url:
        fg.link(href=document.prev_archive_url, rel="prev-archive", type=ATOM_MEDIA_TYPE)
    if document.next_archive_url:
        fg.link(href=document.next_archive_url, rel="next-archive", type=ATOM_MEDIA_TYPE)
    if document.is_archive:
        fg.register_extension("history", _ArchiveMarker, atom=True, rss=False)

    zone_of = item_zones(config)
    for item in entries:
        zone = zone_of(item)
        fe = fg.add_entry(order="append")
        fe.id(entry_id(item.article_id))
        fe.title(xml_text(item.title) or item.article_id)
        fe.updated(item.updated.astimezone(zone))
        if item.published is not None:
            fe.published(item.published.astimezone(zone))
        fe.content(xml_text(item.html), type="html")
        if item.summary:
            fe.summary(xml_text(item.summary), type="text")
        if item.author:
            fe.author({"name": xml_text(item.author)})
        for term in sorted(item.categories):
            fe.category(term=xml_text(term), label=xml_text(feed_title(config, term)))
        story = stories.get(item.article_id) if stories else None
        if story is not None:
            fe.category(term=xml_text(story.story_id), scheme=STORY_SCHEME)
        fe.register_extension("extras", _EntryExtras, atom=True, rss=False)
        alternate, via = entry_links(item, config)
        fe.extras.alternate_url, fe.extras.via_url = xml_text_or_none(alternate), xml_text_or_none(via)
        fe.extras.source_title = xml_text(", ".join(sorted(item.sources)))
        fe.extras.related = story.related if story is not None else ()
    result: bytes = fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return result


def entry_links(item: Item, config: Config) -> tuple[str | None, str | None]:
    """(rel="alternate", rel="via") of an entry: settings.entry_link = "mirror" points alternate at
    the article page (`/a/<key>.html`) and via at the original, "original" the reverse. RFC 4287
    §4.2.7.2: "via" names the source of the information in the entry."""
    mirror = site_url(config.settings.base_url, f"a/{article_key(item.article_id)}.html")
    original = item.url
    if config.settings.entry_link == "mirror":
        return mirror, original
    return original, mirror


def feed_id(name: str) -> str:
    return f"{TAG_PREFIX}feeds/{name}"


def entry_id(article_id: str) -> str:
    """`tag:aggregator,2022:NW202201242257831752`: derived from the article_id alone, so stable
    across rebuilds, sources and categories. Characters a URI cannot hold are %-escaped."""
    return TAG_PREFIX + quote(article_id, safe="-._~!$&'()*+,;=:@/?")


def sort_newest_first(items: Sequence[Item]) -> list[Item]:
    return sorted(items, key=_newest_first_key)


def _newest_first_key(item: Item) -> tuple[float, float, str]:
    # newest by when the article appeared (published), then by edit time; article_id breaks ties
    # so the order is total and the bytes deterministic
    shown = item.published or item.updated
    return (-shown.timestamp(), -item.updated.timestamp(), item.article_id)


def item_zones(config: Config) -> Callable[[Item], tzinfo]:
    """The zone an item's dates are shown in: that of the source it came from (its "real offset",
    e.g. +08:00 for 南通日报), else settings.timezone. Storage keeps UTC; this is display only."""
    zones = {source.name: source.timezone for source in config.sources if source.timezone}
    default = ZoneInfo(config.settings.timezone)

    def zone_of(item: Item) -> tzinfo:
        for source in sorted(item.sources):
            if source in zones:
                return ZoneInfo(zones[source])
        return default

    return zone_of


class _ArchiveMarker(BaseExtension):  # type: ignore[misc]
    """Adds `<fh:archive/>`, which marks an RFC 5005 archive document."""

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS}

    def extend_atom(self, feed: Any) -> Any:
        xml_elem(f"{{{HISTORY_NS}}}archive", feed)
        return feed


class _EntryExtras(BaseEntryExtension):  # type: ignore[misc]
    """The entry's `rel="alternate"` and `rel="related"` links and its `<source>`, which feedgen 1.0 cannot write.

    feedgen's `FeedEntry.link()` drops `rel` and `type` when serialising Atom (its loop variable
    shadows the dict), and its `source()` insists on a link, while a source's polling URL is no
    feed a subscriber can use (JSON APIs, tokens): RFC 4287 §4.2.11 allows a title alone.
    """

    alternate_url: str | None = None
    via_url: str | None = None
    source_title = ""
    #: other papers' copies of the entry's story (issue 14)
    related: tuple[RelatedLink, ...] = ()

    def extend_atom(self, entry: Any) -> Any:
        if self.alternate_url:
            xml_elem("link", entry, href=self.alternate_url, rel="alternate", type="text/html")
        if self.via_url:
            xml_elem("link", entry, href=self.via_url, rel="via", type="text/html")
        for link in self.related:
            xml_elem("link", entry, href=link.url, rel="related", type="text/html", title=xml_text(link.title))
        if self.source_title:
            source = xml_elem("source", entry)
            xml_elem("title", source).text = self.source_title
        return entry
