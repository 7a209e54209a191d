"""The website's dynamic side in `serve`: /search (HTML, JSON, limits), OpenSearch, 410 Gone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import html5lib
import pytest
from lxml import etree, html

from aggregator.config.load import Config, Settings
from aggregator.models import Item, ItemChange
from aggregator.publish.run import publish_categories
from aggregator.serve.app import create_app
from aggregator.serve.site import RateLimiter, SiteSearch
from aggregator.storage import Storage, open_storage
from tests.test_serve import RunningServer

T0 = datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)


def make_item(n: int, title: str, text: str) -> Item:
    return Item(article_id=f"NW{202201240000000000 + n}", title=title, url=f"https://finance.eastmoney.com/a/{n}.html",
                html=f"<p>{text}</p>", published=T0 + timedelta(hours=n), updated=T0 + timedelta(hours=n),
                categories=frozenset({"nantongribao"}), sources=frozenset({"nt"}), content_hash=f"h{n}")


class Site:
    def __init__(self, tmp_path: Path, limiter: RateLimiter | None = None) -> None:
        self.server = RunningServer()
        self.config = Config(path=tmp_path / "feeds.toml", settings=Settings(
            base_url=self.server.base_url, output_dir=Path("site"), store=str(tmp_path / "store.db")))
        self.storage: Storage = open_storage(self.config.settings.store)
        items = [make_item(n, f"南通港新闻 {n}", f"集装箱吞吐量第 {n} 次创新高") for n in range(30)]
        items.append(make_item(40, "中天科技绿色低碳行动", "碳达峰 碳中和"))
        self.storage.apply_update([ItemChange("insert", i, "nt", i.content_hash) for i in items], None)
        publish_categories(self.storage, self.config)
        search = SiteSearch(self.config, limiter)
        self.server.start(create_app(self.config, extra_routes=[("/search", search)]))  # type: ignore[list-item]
        self._search = search

    def close(self) -> None:
        self.server.stop()
        self._search.close()
        self.storage.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    built = Site(tmp_path)
    try:
        yield built
    finally:
        built.close()


def q(text: str) -> str:
    return quote(text, safe="")


def test_search_answers_an_html_page_linking_the_article_pages_newest_first(site: Site) -> None:
    response = site.server.request(f"/search?q={q('创新高')}")
    assert response.status == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    html5lib.HTMLParser(strict=True).parse(response.body)
    doc = html.fromstring(response.body)
    links = doc.xpath("//ol/li/a/@href")
    assert links[:2] == ["a/NW202201240000000029.html", "a/NW202201240000000028.html"] and len(links) == 20
    assert doc.xpath('//nav[@class="pages"]//a/@href') == [f"search?q={q('创新高')}&page=2"]
    assert doc.xpath('//input[@name="q"]/@value') == ["创新高"]
    assert site.server.request("/" + links[0]).status == 200
    second = html.fromstring(site.server.request(f"/search?q={q('创新高')}&page=2").body)
    assert len(second.xpath("//ol/li/a")) == 10


def test_search_answers_json_with_absolute_article_urls(site: Site) -> None:
    response = site.server.request(f"/search?q={q('碳达峰')}&format=json")
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    document = json.loads(response.body)
    assert [r["article_id"] for r in document["results"]] == ["NW202201240000000040"]
    assert document["results"][0]["url"] == f"{site.server.base_url}a/NW202201240000000040.html"
    assert document["next"] is None and document["query"] == "碳达峰"
    one_char = json.loads(site.server.request(f"/search?q={q('碳')}&format=json").body)
    assert [r["article_id"] for r in one_char["results"]] == ["NW202201240000000040"]


def test_an_overlong_query_is_400_and_an_empty_one_shows_the_form(site: Site) -> None:
    assert site.server.request(f"/search?q={q('长' * 65)}").status == 400
    empty = site.server.request("/search")
    assert empty.status == 200 and html.fromstring(empty.body).xpath("//ol/li") == []


def test_each_client_gets_a_bounded_number_of_queries(tmp_path: Path) -> None:
    limited = Site(tmp_path, RateLimiter(capacity=3, window_seconds=60))
    try:
        statuses = [limited.server.request(f"/search?q={q('南通')}").status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = limited.server.request(f"/search?q={q('南通')}")
        assert int(refused.headers["retry-after"]) >= 1
        # behind nginx on loopback, the forwarded address is the client
        assert limited.server.request(f"/search?q={q('南通')}", {"X-Forwarded-For": "203.0.113.9"}).status == 200
    finally:
        limited.close()


def test_the_rate_limiter_refills_over_its_window() -> None:
    limiter = RateLimiter(capacity=2, window_seconds=10)
    assert [limiter.wait_seconds("a", 0.0) for _ in range(3)] == [0, 0, pytest.approx(5.0)]
    assert limiter.wait_seconds("b", 0.0) == 0
    assert limiter.wait_seconds("a", 5.0) == 0


def test_the_opensearch_description_is_served_and_linked_from_every_page(site: Site) -> None:
    response = site.server.request("/opensearch.xml")
    assert response.headers["content-type"] == "application/opensearchdescription+xml; charset=utf-8"
    root = etree.fromstring(response.body)
    ns = {"os": "http://a9.com/-/spec/opensearch/1.1/"}
    templates = root.xpath("//os:Url/@template", namespaces=ns)
    assert templates[0] == f"{site.server.base_url}search?q={{searchTerms}}&page={{startPage?}}"
    for path in ("/", "/c/nantongribao.html", "/a/NW202201240000000040.html", "/search"):
        doc = html.fromstring(site.server.request(path).body)
        assert doc.xpath('//link[@rel="search"]/@type') == ["application/opensearchdescription+xml"]


def test_an_article_removed_by_retention_is_410_gone(site: Site) -> None:
    assert site.server.request("/a/NW202201240000000040.html").status == 200
    config = site.config.model_copy(update={"settings": site.config.settings.model_copy(update={"retention": timedelta(days=1)})})
    publish_categories(site.storage, config)
    assert site.server.request("/a/NW202201240000000040.html").status == 410
    assert site.server.request("/a/NW209901240000000040.html").status == 404
    assert site.server.request("/nantongribao/2022/01/24/NW202201240000000040.html").headers["location"].endswith(
        "/a/NW202201240000000040.html")
