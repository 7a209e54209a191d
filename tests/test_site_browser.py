"""The website in a real headless Chromium at a 375 px phone width: the seed article's page, a
category page, the index at the legacy scale (2,000 categories) and a search results page render
without console errors and without horizontal scrolling; every page parses as strict HTML5.

Screenshots are kept under test-artifacts/ for a person to look at (site-*.png).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import html5lib
import pytest

from aggregator.config.load import Config
from aggregator.serve.app import create_app
from tests.browser import Browser, running_browser
from tests.conftest import REPO_ROOT
from tests.site_data import build_legacy_site, legacy_scale_index, open_site_storage, site_config
from tests.test_serve import RunningServer

LEGACY_SCALE_CATEGORIES = 2000
#: the issue's bound for the index at the legacy scale
MAX_INDEX_GZIP_BYTES = 200 * 1024

PAGES = {
    "article": "a/NW202201242257831752.html",
    "category": "c/emnews.html",
    "category-older": "c/emnews/1.html",
    "index": "",
    "search": "search?q=%E7%A2%B3%E8%BE%BE%E5%B3%B0",  # 碳达峰, a phrase of the seed article
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, RunningServer]]:
    from tests.conftest import shared_path

    posts = shared_path("corpus", "legacy-posts")
    root = tmp_path_factory.mktemp("browser-site")
    server = RunningServer()
    config = site_config(root, server.base_url)
    storage = open_site_storage(config)
    try:
        build_legacy_site(storage, config, posts)
        legacy_scale_index(storage, config, LEGACY_SCALE_CATEGORIES)
        server.start(create_app(config))
        yield config, server
    finally:
        server.stop()
        storage.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with running_browser() as running:
        yield running


@pytest.mark.parametrize("name", sorted(PAGES))
def test_each_kind_of_page_renders_on_a_phone_without_errors_or_sideways_scrolling(
    site: tuple[Config, RunningServer], browser: Browser, name: str
) -> None:
    _, server = site
    artifacts = REPO_ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    screenshot = artifacts / f"site-{name}.png"
    screenshot.unlink(missing_ok=True)
    report = browser.check(server.base_url + PAGES[name], screenshot)
    assert report.console_errors == []
    assert not report.scrolls_horizontally, (report.scroll_width, report.client_width)
    assert report.client_width == 375
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected_text = {
        "article": "聚焦可持续发展 中天科技全面启动绿色低碳制造行动",
        "category": "东财滚动新闻",
        "category-older": "第 1 页",
        "index": "南通日报新闻",
        "search": "聚焦可持续发展",
    }[name]
    assert expected_text in report.text


def test_the_index_filter_narrows_the_list_as_one_types(site: tuple[Config, RunningServer], browser: Browser) -> None:
    _, server = site
    report = browser.check(server.base_url, type_into=("#filter input", "nantong"))
    assert report.console_errors == []
    assert "南通日报新闻" in report.text and "东财滚动新闻" not in report.text


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_page_parses_as_html5_without_a_single_error(site: tuple[Config, RunningServer], name: str) -> None:
    _, server = site
    response = server.request("/" + PAGES[name])
    assert response.status == 200
    html5lib.HTMLParser(strict=True).parse(response.body)


def test_the_index_at_the_legacy_scale_stays_small_and_lists_every_category(site: tuple[Config, RunningServer]) -> None:
    config, server = site
    output_dir = config.path.parent / "site"
    index = (output_dir / "index.html").read_bytes()
    assert len((output_dir / "index.html.gz").read_bytes()) < MAX_INDEX_GZIP_BYTES
    assert gzip.decompress((output_dir / "index.html.gz").read_bytes()) == index
    assert index.count(b"<li>") == LEGACY_SCALE_CATEGORIES + 12  # + the legacy media
    response = server.request("/", {"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"


def test_the_index_works_without_javascript(site: tuple[Config, RunningServer]) -> None:
    """The filter box is hidden in the markup (the script shows it); the list and letter bar are plain links."""
    from lxml import html

    config, _ = site
    page = html.fromstring((config.path.parent / "site" / "index.html").read_bytes())
    assert page.xpath('//*[@id="filter"]/@hidden') == [""]
    letters = page.xpath('//nav[@id="letters"]/a/text()')
    assert letters[:3] == ["0-9", "A", "B"] and "Z" in letters
    for anchor in page.xpath('//nav[@id="letters"]/a/@href'):
        assert page.xpath(f'//section[@id="{anchor[1:]}"]')
    assert page.xpath('//section[@id="l-n"]//a[@href="c/nantongribao.html"]/text()') == ["南通日报新闻"]
