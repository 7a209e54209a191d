"""The HTML index: autodiscovery, counts, headlines, subscribe links; Chinese, phone-sized, no script."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from lxml import html

from aggregator.config.load import Config, Settings
from aggregator.models import Item
from aggregator.publish.index_page import IndexSection, render_index_page

T0 = datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)


def make_item(n: int, **fields: object) -> Item:
    values: dict[str, object] = {
        "article_id": f"NW{n}", "title": f"新闻 {n}", "url": f"https://finews.example/{n}.html", "html": "",
        "published": T0 + timedelta(hours=n), "updated": T0 + timedelta(hours=n),
        "categories": frozenset({"nantongribao"}), "sources": frozenset({"nt"}), "content_hash": "h",
    }
    return Item(**{**values, **fields})  # type: ignore[arg-type]


def sections() -> list[IndexSection]:
    return [
        IndexSection("nantongribao", "南通日报新闻", "南通日报的本地新闻", 23, T0 + timedelta(hours=2),
                     (make_item(2), make_item(1)), archive_pages=4),
        IndexSection("yangzhou", "扬州日报新闻", None, 0, None, ()),
        IndexSection("all", "全部新闻", None, 23, T0 + timedelta(hours=2), (make_item(2),), archive_pages=4),
    ]


def render(given: list[IndexSection] | None = None) -> html.HtmlElement:
    config = Config(path=Path("/srv/feeds.toml"), settings=Settings(base_url="https://news.example/"))
    return html.fromstring(render_index_page(config, sections() if given is None else given))


def test_every_feed_is_announced_for_autodiscovery() -> None:
    links = render().xpath('//head/link[@rel="alternate"][@type="application/atom+xml"]')
    assert [(link.get("title"), link.get("href")) for link in links] == [
        ("南通日报新闻", "feeds/nantongribao.atom"),
        ("扬州日报新闻", "feeds/yangzhou.atom"),
        ("全部新闻", "feeds/all.atom"),
    ]


def test_the_page_is_chinese_phone_sized_and_needs_no_script() -> None:
    page = render()
    assert page.get("lang") == "zh-CN"
    assert page.xpath('//meta[@name="viewport"]/@content') == ["width=device-width, initial-scale=1"]
    assert page.xpath("//script") == []
    assert not any(name.startswith("on") for el in page.iter() for name in el.attrib)


def test_each_section_shows_count_last_update_headlines_and_subscribe_links() -> None:
    section = render().xpath('//section[@id="nantongribao"]')[0]
    text = section.text_content()
    assert "南通日报新闻" in text and "南通日报的本地新闻" in text
    assert "共 23 篇" in text
    assert "2022-01-24 02:48" in text  # settings.timezone (Asia/Shanghai)
    assert [a.text for a in section.xpath(".//li/a")] == ["新闻 2", "新闻 1"]
    assert section.xpath(".//a/@href")[2:] == [
        "feeds/nantongribao.atom", "feeds/nantongribao.json", "feeds/archive/nantongribao/4.atom",
    ]
    assert "https://news.example/feeds/nantongribao.atom" in text


def test_an_empty_section_says_so() -> None:
    text = render().xpath('//section[@id="yangzhou"]')[0].text_content()
    assert "共 0 篇" in text and "尚无更新" in text and "暂无文章" in text
    assert "历史存档" not in text


def test_hostile_titles_are_escaped_and_odd_schemes_are_not_linked() -> None:
    hostile = IndexSection(
        "x", "<script>alert(1)</script>", None, 2, T0,
        (make_item(1, title='"><img src=x onerror=alert(1)>'), make_item(2, url="javascript:alert(1)")),
    )
    page = render([hostile])
    assert page.xpath("//script") == [] and page.xpath("//img") == []
    assert page.xpath('//section[@id="x"]/h2')[0].text == "<script>alert(1)</script>"
    assert not [href for href in page.xpath("//a/@href") if href.startswith("javascript:")]


def test_the_opml_and_all_feed_are_offered_at_the_top() -> None:
    header = render().xpath("//header")[0]
    assert header.xpath(".//a/@href") == ["feeds.opml", "feeds/all.atom"]
