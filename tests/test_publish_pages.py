"""Publishing the website: what each page shows, and that a poll writes only the pages it touched."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import html5lib
from lxml import html

from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.models import Item, ItemChange
from aggregator.publish.run import publish_categories
from aggregator.publish.pages import RelatedLink
from aggregator.publish.page_layout import article_file
from aggregator.similar.clusters import sign_item
from aggregator.storage import SignedItem, Storage, StoryRequest

T0 = datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)


def make_config(tmp_path: Path, **settings: object) -> Config:
    return Config(
        path=tmp_path / "feeds.toml",
        settings=Settings(**{"base_url": "https://news.example/", "output_dir": Path("site"),  # type: ignore[arg-type]
                             "max_items_per_feed": 3, "page_size": 3, **settings}),
        categories={"nantongribao": CategoryConfig(title="南通日报新闻"), "yangzhou": CategoryConfig(title="扬州日报新闻")},
        sources=(SourceConfig(name="nt", url="https://example.org/nt.xml", categories=("nantongribao",),
                              timezone="Asia/Shanghai"),),
    )


def make_item(n: int, category: str = "nantongribao", **changes: object) -> Item:
    item = Item(
        article_id=f"NW{202201240000000000 + n}", title=f"新闻标题 {n}", url=f"https://finance.eastmoney.com/a/{n}.html",
        html=f"<p>第 {n} 篇正文，<b>南通</b>港。</p>", published=T0 + timedelta(hours=n), updated=T0 + timedelta(hours=n),
        categories=frozenset({category}), sources=frozenset({"nt"}), content_hash=f"h{n}",
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


def store(storage: Storage, items: list[Item]) -> None:
    storage.apply_update([ItemChange("insert", i, "nt", i.content_hash) for i in items], None)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def written(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> set[str]:
    return {name for name, version in after.items() if before.get(name) != version}


def page(path: Path) -> html.HtmlElement:
    data = path.read_bytes()
    html5lib.HTMLParser(strict=True).parse(data)
    return html.fromstring(data)


def test_an_article_page_shows_title_time_with_offset_medium_categories_body_and_original_link(
    tmp_path: Path, storage: Storage
) -> None:
    config = make_config(tmp_path)
    item = make_item(1, categories=frozenset({"nantongribao", "yangzhou"}))
    store(storage, [item])
    publish_categories(storage, config)
    path = tmp_path / "site" / "a" / "NW202201240000000001.html"
    doc = page(path)
    assert doc.xpath("/html/@lang") == ["zh-CN"]
    assert doc.xpath('//link[@rel="canonical"]/@href') == ["https://news.example/a/NW202201240000000001.html"]
    assert doc.xpath("//h1/text()") == ["新闻标题 1"]
    assert doc.xpath("//article/p[1]/time/text()") == ["2022-01-24 01:48 (UTC+08:00)"]
    assert "来源：南通日报、扬州日报" in doc.xpath("string(//article/p[1])")
    assert doc.xpath('//article//a[contains(@href, "c/")]/@href') == ["../c/nantongribao.html", "../c/yangzhou.html"]
    assert doc.xpath('string(//div[@class="body"])').strip() == "第 1 篇正文，南通港。"
    assert doc.xpath('//a[text()="原文链接"]/@href') == ["https://finance.eastmoney.com/a/1.html"]
    assert doc.xpath('//link[@rel="search"]/@href') == ["../opensearch.xml"]
    assert doc.xpath("//script") == [] and doc.xpath('//section[@class="related"]') == []
    assert (tmp_path / "site" / "a" / "NW202201240000000001.html.gz").exists()


def test_an_id_unfit_for_a_file_name_and_an_unsafe_link_still_make_a_safe_page(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    item = make_item(2, article_id="url:https://example.org/x?id=<1>", url="javascript:alert(1)",
                     title="<script>alert(1)</script>")
    store(storage, [item])
    publish_categories(storage, config)
    file = article_file(item.article_id)
    assert file.name.startswith("_") and len(file.name) == len("_") + 32 + len(".html")
    doc = page(tmp_path / "site" / file)
    assert doc.xpath("//script") == [] and doc.xpath("//h1/text()") == ["<script>alert(1)</script>"]
    assert doc.xpath('//a[text()="原文链接"]') == []


def test_a_poll_storing_n_new_items_writes_n_article_pages_the_touched_category_pages_and_the_index_only(
    tmp_path: Path, storage: Storage
) -> None:
    config = make_config(tmp_path)
    store(storage, [*[make_item(n) for n in range(7)], make_item(20, "yangzhou"), make_item(21, "yangzhou")])
    publish_categories(storage, config)
    site = tmp_path / "site"
    before = snapshot(site)
    store(storage, [make_item(7), make_item(8)])
    publish_categories(storage, config, ["nantongribao"])
    pages = {name for name in written(before, snapshot(site)) if name.startswith(("a/", "c/", "index"))}
    assert pages == {
        "a/NW202201240000000007.html", "a/NW202201240000000007.html.gz",
        "a/NW202201240000000008.html", "a/NW202201240000000008.html.gz",
        "c/nantongribao.html", "c/nantongribao.html.gz",  # the front page: 8, 7, 6
        "c/nantongribao/2.html", "c/nantongribao/2.html.gz",  # the open older page grew: 5, 4, 3
        "index.html", "index.html.gz",
    }


def test_an_edited_item_gets_its_page_rewritten_by_the_next_poll(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(n) for n in range(4)])
    publish_categories(storage, config)
    edited = make_item(3, title="改过的标题", content_hash="edited")
    storage.apply_update([ItemChange("update", edited, "nt", "edited")], None)
    publish_categories(storage, config, ["nantongribao"])
    assert page(tmp_path / "site" / article_file(edited.article_id)).xpath("//h1/text()") == ["改过的标题"]


def test_build_pages_renders_every_page_again(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(n) for n in range(7)])
    publish_categories(storage, config)
    old_page = tmp_path / "site" / "a" / "NW202201240000000000.html"
    original = old_page.read_bytes()
    old_page.write_bytes(b"an old template")
    publish_categories(storage, config)
    assert old_page.read_bytes() == b"an old template"  # not touched: nothing about it changed
    publish_categories(storage, config, full_pages=True)
    assert old_page.read_bytes() == original


def test_category_pages_list_newest_first_and_link_their_older_pages(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(n) for n in range(7)])
    publish_categories(storage, config)
    site = tmp_path / "site" / "c"
    front = page(site / "nantongribao.html")
    assert front.xpath("//ol/li/a/text()") == ["新闻标题 6", "新闻标题 5", "新闻标题 4"]
    assert front.xpath("//ol/li/a/@href")[0] == "../a/NW202201240000000006.html"
    assert front.xpath('//nav[@class="pages"]//a/@href') == ["../c/nantongribao/2.html"]
    second = page(site / "nantongribao" / "2.html")
    assert second.xpath("//ol/li/a/text()") == ["新闻标题 3"]
    assert second.xpath('//nav[@class="pages"]//a/@href') == ["../../c/nantongribao.html", "../../c/nantongribao/1.html"]
    first = page(site / "nantongribao" / "1.html")
    assert first.xpath("//ol/li/a/text()") == ["新闻标题 2", "新闻标题 1", "新闻标题 0"]
    assert first.xpath('//nav[@class="pages"]//a/@href') == ["../../c/nantongribao/2.html"]
    index = page(tmp_path / "site" / "index.html")
    assert index.xpath('//a[@href="c/nantongribao.html"]/text()') == ["南通日报新闻"]


def test_the_same_story_hook_lists_the_other_papers(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(1), make_item(2, "yangzhou")])
    publish_categories(storage, config, related=lambda items: {
        "NW202201240000000001": [RelatedLink("NW202201240000000002", "扬州的报道", "扬州日报")]})
    doc = page(tmp_path / "site" / "a" / "NW202201240000000001.html")
    assert doc.xpath('//section[@class="related"]//a/@href') == ["../a/NW202201240000000002.html"]
    assert doc.xpath('//section[@class="related"]//a/text()') == ["扬州的报道"]


def test_an_article_page_lists_the_other_papers_among_a_large_storys_first_twenty_members(
    tmp_path: Path, storage: Storage
) -> None:
    body = "".join(f"<p>南通港第{n}号码头今年吞吐量再创新高，集装箱航线增至{n + 40}条，港口经济持续向好。</p>"
                   for n in range(6))
    items = [make_item(n, html=body + f"<p>（文章来源：第{n}报）</p>") for n in range(30)]
    request = StoryRequest(tuple(SignedItem(i.article_id, i.categories, T0, sign_item(i.title, i.html)) for i in items),
                           threshold=0.5, window=timedelta(days=7), now=T0)
    storage.apply_update([ItemChange("insert", i, "nt", i.content_hash) for i in items], None, stories=request)

    publish_categories(storage, make_config(tmp_path))

    def related(item: Item) -> list[str]:
        return page(tmp_path / "site" / "a" / f"{item.article_id}.html").xpath('//section[@class="related"]//a/@href')

    first_twenty = [f"../a/{item.article_id}.html" for item in items[:20]]
    assert related(items[0]) == first_twenty[1:]
    assert related(items[-1]) == first_twenty


def test_retention_removes_old_items_from_feeds_pages_and_search_and_rewrites_sealed_archives_once(
    tmp_path: Path, storage: Storage
) -> None:
    now = datetime.now(UTC)
    items = [make_item(n, published=now - timedelta(days=100 - n), updated=now - timedelta(days=100 - n))
             for n in range(4)]
    items += [make_item(n, published=now - timedelta(days=10 - n), updated=now - timedelta(days=10 - n))
              for n in range(4, 9)]
    store(storage, items)
    publish_categories(storage, make_config(tmp_path))
    site = tmp_path / "site"
    sealed_page = (site / "archive" / "nantongribao" / "1.atom").read_bytes()
    assert b"NW202201240000000000" in sealed_page

    config = make_config(tmp_path, retention=timedelta(days=30))
    publish_categories(storage, config)
    kept = {f"NW{202201240000000000 + n}" for n in range(4, 9)}
    for n in range(4):
        assert not (site / "a" / f"NW{202201240000000000 + n}.html").exists()
        assert (site / "a" / f"NW{202201240000000000 + n}.gone").exists()
    assert storage.search("南通", page=1, per_page=20, time_limit_seconds=5).hits == tuple(
        h for h in storage.search("南通", page=1, per_page=20, time_limit_seconds=5).hits if h.article_id in kept)
    assert {h.article_id for h in storage.search("南通", page=1, per_page=20, time_limit_seconds=5).hits} == kept

    seen: list[str] = []
    url: str | None = "nantongribao.atom"
    while url:
        feed = feedparser.parse((site / url).read_bytes())
        seen += [entry.id.rpartition(":")[2] for entry in feed.entries]
        prev = [link.href for link in feed.feed.links if link.rel == "prev-archive"]
        url = prev[0].removeprefix("https://news.example/feeds/") if prev else None
    assert sorted(seen) == sorted(kept)
    assert not (site / "archive" / "nantongribao" / "3.atom").exists()
    all_feed = feedparser.parse((site / "all.atom").read_bytes())
    assert {entry.id.rpartition(":")[2] for entry in all_feed.entries} <= kept
    category = page(site / "c" / "nantongribao.html")
    assert "共 5 篇" in category.text_content()
