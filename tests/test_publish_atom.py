"""render_atom: valid Atom 1.0 (RFC 4287 RELAX NG + feedparser), stable ids, real offsets, RFC 5005 links."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree

import aggregator
from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.models import Item
from aggregator.publish.archive import plan_archive
from aggregator.publish.atom import describe_feed, entry_id, render_atom
from tests.conftest import DATA_DIR

ATOM_RNG = Path(aggregator.__file__).parent / "schemas" / "atom.rng"
ATOM_NS = "{http://www.w3.org/2005/Atom}"
T0 = datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)  # 2022-01-24 00:48:09 +08:00, the seed post's date


def make_config(**settings: object) -> Config:
    return Config(
        path=Path("/srv/news/feeds.toml"),
        settings=Settings(**{"base_url": "https://news.example/", **settings}),  # type: ignore[arg-type]
        categories={
            "nantongribao": CategoryConfig(title="南通日报新闻", description="南通日报的本地新闻"),
            "yangzhou": CategoryConfig(title="扬州日报新闻"),
        },
        sources=(
            SourceConfig(name="南通日报", url="https://example.org/nt.json", categories=("nantongribao",),
                         timezone="Asia/Shanghai"),
            SourceConfig(name="utc-mirror", url="https://example.org/u.xml", categories=("yangzhou",), timezone="UTC"),
        ),
    )


def make_item(n: int = 0, **changes: object) -> Item:
    item = Item(
        article_id=f"NW20220124225783{1752 + n}",
        title=f"聚焦可持续发展 中天科技全面启动绿色低碳制造行动 {n}",
        url=f"http://finews.example/html_News/NewsShare.html?infoCode=NW20220124225783{1752 + n}",
        html="<p>聚焦可持续发展，以积极投身新能源为主体的新型电力系统建设。</p><p>（文章来源：南通日报）</p>",
        published=T0 + timedelta(hours=n),
        updated=T0 + timedelta(hours=n),
        categories=frozenset({"nantongribao"}),
        sources=frozenset({"南通日报"}),
        content_hash=f"hash{n}",
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


def render_current(items: list[Item], config: Config | None = None, name: str = "nantongribao") -> bytes:
    config = config or make_config()
    return render_atom(describe_feed(config, name, plan_archive(len(items), 100)), items, config)


def assert_valid_atom(document: bytes) -> None:
    schema = etree.RelaxNG(etree.parse(str(ATOM_RNG)))
    assert schema.validate(etree.fromstring(document)), schema.error_log
    parsed = feedparser.parse(document)
    assert not parsed.bozo, parsed.get("bozo_exception")


def test_a_seed_article_renders_exactly_the_reviewed_document() -> None:
    expected = (DATA_DIR / "publish" / "seed_article.atom").read_bytes()
    assert render_current([make_item(author="南通日报记者", summary="中天科技发布绿色低碳制造行动方案")]) == expected


@pytest.mark.parametrize(
    "item",
    [
        make_item(),
        make_item(url=None),
        make_item(published=None),
        make_item(html=""),
        make_item(author="记者 张三", summary="摘要 & <不是标签>"),
        make_item(sources=frozenset({"南通日报", "utc-mirror"}), categories=frozenset({"nantongribao", "yangzhou"})),
        make_item(title="标题\x08里有\x00控制字符\x1b"),
        make_item(article_id="https://example.org/a b?x=1#frag"),
        make_item(categories=frozenset({"nantongribao", "auto-filed"})),
    ],
    ids=["full", "no-link", "no-published", "empty-body", "author-and-summary", "two-sources",
         "control-characters", "url-shaped-article-id", "unconfigured-category"],
)
def test_every_item_shape_gives_valid_atom(item: Item) -> None:
    assert_valid_atom(render_current([item]))


def test_the_schema_rejects_a_feed_without_an_id() -> None:
    schema = etree.RelaxNG(etree.parse(str(ATOM_RNG)))
    feed = etree.fromstring(render_current([make_item()]))
    feed.remove(feed.find(f"{ATOM_NS}id"))
    assert not schema.validate(feed)


def test_an_empty_feed_is_valid_and_dated_without_the_clock() -> None:
    document = render_current([])
    assert_valid_atom(document)
    assert feedparser.parse(document).feed.updated == "1970-01-01T08:00:00+08:00"


def test_feed_updated_is_the_newest_entry_updated() -> None:
    items = [make_item(0), make_item(1, updated=T0 + timedelta(days=3)), make_item(2)]
    parsed = feedparser.parse(render_current(items))
    assert parsed.feed.updated == "2022-01-27T00:48:09+08:00"


def test_rendering_is_deterministic_whatever_the_input_order() -> None:
    items = [make_item(n) for n in range(5)]
    assert render_current(items) == render_current(list(reversed(items)))


def test_entries_are_newest_first() -> None:
    parsed = feedparser.parse(render_current([make_item(n) for n in (2, 0, 3, 1)]))
    assert [e.id[-1] for e in parsed.entries] == ["5", "4", "3", "2"]


def test_entry_id_comes_from_the_article_id_alone() -> None:
    item = make_item()
    entry = feedparser.parse(render_current([item])).entries[0]
    assert entry.id == "tag:aggregator,2022:NW202201242257831752" == entry_id(item.article_id)
    moved = make_config(base_url="https://mirror.example/news/")
    assert feedparser.parse(render_current([item], moved)).entries[0].id == entry.id


def test_dates_carry_the_offset_of_the_source_the_item_came_from() -> None:
    document = etree.fromstring(render_current([make_item(), make_item(1, sources=frozenset({"utc-mirror"}))]))
    published = [e.findtext(f"{ATOM_NS}published") for e in document.iter(f"{ATOM_NS}entry")]
    assert published == ["2022-01-23T17:48:09+00:00", "2022-01-24T00:48:09+08:00"]


def test_entry_links_categories_and_source_are_explicit() -> None:
    item = make_item(sources=frozenset({"南通日报", "utc-mirror"}), categories=frozenset({"nantongribao", "yangzhou"}))
    entry = etree.fromstring(render_current([item])).find(f"{ATOM_NS}entry")
    assert entry is not None
    links = [link.attrib for link in entry.findall(f"{ATOM_NS}link")]
    assert links == [
        {"href": "https://news.example/a/NW202201242257831752.html", "rel": "alternate", "type": "text/html"},
        {"href": item.url, "rel": "via", "type": "text/html"},
    ]
    assert [(c.get("term"), c.get("label")) for c in entry.iter(f"{ATOM_NS}category")] == [
        ("nantongribao", "南通日报新闻"),
        ("yangzhou", "扬州日报新闻"),
    ]
    assert entry.findtext(f"{ATOM_NS}source/{ATOM_NS}title") == "utc-mirror, 南通日报"
    content = entry.find(f"{ATOM_NS}content")
    assert content is not None and content.get("type") == "html" and content.text == item.html


def test_feed_links_self_alternate_and_generator() -> None:
    parsed = feedparser.parse(render_current([make_item()]))
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links == {
        "self": "https://news.example/feeds/nantongribao.atom",
        "alternate": "https://news.example/c/nantongribao.html",
    }
    assert parsed.feed.title == "南通日报新闻"
    assert parsed.feed.subtitle == "南通日报的本地新闻"
    assert parsed.feed.generator == "aggregator"
    assert parsed.feed.id == "tag:aggregator,2022:feeds/nantongribao"


def test_a_configured_hub_is_announced() -> None:
    config = make_config(websub_hub="https://hub.example/")
    parsed = feedparser.parse(render_current([make_item()], config))
    assert {link.rel: link.href for link in parsed.feed.links}["hub"] == "https://hub.example/"


def test_archive_pages_carry_rfc5005_links_and_the_archive_marker() -> None:
    config = make_config(max_items_per_feed=5)
    plan = plan_archive(23, 5)
    middle = etree.fromstring(render_atom(describe_feed(config, "nantongribao", plan, 2), [make_item()], config))
    links = {link.get("rel"): link.get("href") for link in middle.iter(f"{ATOM_NS}link") if link.getparent() is middle}
    assert links == {
        "self": "https://news.example/feeds/archive/nantongribao/2.atom",
        "alternate": "https://news.example/c/nantongribao.html",
        "current": "https://news.example/feeds/nantongribao.atom",
        "prev-archive": "https://news.example/feeds/archive/nantongribao/1.atom",
        "next-archive": "https://news.example/feeds/archive/nantongribao/3.atom",
    }
    assert middle.find("{http://purl.org/syndication/history/1.0}archive") is not None
    current = etree.fromstring(render_atom(describe_feed(config, "nantongribao", plan), [make_item()], config))
    assert current.find("{http://purl.org/syndication/history/1.0}archive") is None
    prev = [link.get("href") for link in current.iter(f"{ATOM_NS}link") if link.get("rel") == "prev-archive"]
    assert prev == ["https://news.example/feeds/archive/nantongribao/4.atom"]
    assert_valid_atom(etree.tostring(middle))


def test_the_all_feed_has_its_own_title_and_id() -> None:
    parsed = feedparser.parse(render_current([make_item()], name="all"))
    assert (parsed.feed.title, parsed.feed.id) == ("全部新闻", "tag:aggregator,2022:feeds/all")


@pytest.mark.parametrize(
    ("entry_link", "alternate", "via"),
    [
        ("mirror", "https://news.example/a/NW202201242257831752.html",
         "http://finews.example/html_News/NewsShare.html?infoCode=NW202201242257831752"),
        ("original", "http://finews.example/html_News/NewsShare.html?infoCode=NW202201242257831752",
         "https://news.example/a/NW202201242257831752.html"),
    ],
)
def test_entry_link_decides_whether_alternate_is_the_article_page_or_the_original(
    entry_link: str, alternate: str, via: str
) -> None:
    document = render_current([make_item()], make_config(entry_link=entry_link))
    assert_valid_atom(document)
    entry = feedparser.parse(document).entries[0]
    links = {link["rel"]: link["href"] for link in entry.links}
    assert (links["alternate"], links["via"]) == (alternate, via)
    assert entry.link == alternate
