"""The 60 legacy posts, imported as `import-jekyll` does: every old permalink answers 301 to a page
that answers 200, in `aggregator serve` and in nginx with the map publish generates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from aggregator.config.load import Config
from aggregator.publish.pages.legacy import parse_legacy_permalink
from aggregator.serve.app import create_app
from tests.site_data import build_legacy_site, open_site_storage, site_config
from tests.test_publish_nginx import get, nginx, running_nginx
from tests.test_serve import RunningServer

_FILE = re.compile(r"(?P<folder>_posts|old_post)__(?:(?P<date>\d{4}-\d{2}-\d{2})-)?-?(?P<slug>[^/]+)\.md")


def legacy_urls(folder: Path) -> list[str]:
    """Jekyll's default permalink of each post: /<categories>/<YYYY>/<MM>/<DD>/<slug>.html. The one
    undated file (reconstructed, see the corpus README) is dated by its article id."""
    urls = []
    for path in sorted(folder.glob("*__*.md")):
        match = _FILE.fullmatch(path.name)
        assert match is not None, path.name
        category = re.search(r"^categories:\s*(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
        assert category is not None
        slug = match["slug"]
        date = match["date"] or f"{slug[-18:][:4]}-{slug[-18:][4:6]}-{slug[-18:][6:8]}"
        urls.append(f"/{category.group(1)}/{date.replace('-', '/')}/{slug}.html")
    return urls


@pytest.fixture(scope="module")
def legacy_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, RunningServer, list[str]]]:
    from tests.conftest import shared_path

    posts = shared_path("corpus", "legacy-posts")
    root = tmp_path_factory.mktemp("legacy-site")
    server = RunningServer()
    config = site_config(root, server.base_url)
    storage = open_site_storage(config)
    try:
        build_legacy_site(storage, config, posts)
        server.start(create_app(config))
        yield config, server, legacy_urls(posts)
    finally:
        server.stop()
        storage.close()


def test_the_corpus_has_sixty_legacy_permalinks_of_the_documented_shapes(
    legacy_site: tuple[Config, RunningServer, list[str]]
) -> None:
    _, _, urls = legacy_site
    assert len(urls) == 60  # the _posts/ and old_post/ copies of one post share a permalink
    assert "/nantongribao/2022/01/24/NW202201242257831752.html" in urls
    assert "/emnews/2021/12/08/202112082206672930.html" in urls
    assert sum(1 for url in urls if (p := parse_legacy_permalink(url)) is not None and p.article_id) == 59


def test_every_legacy_post_url_moves_permanently_to_a_page_in_serve(
    legacy_site: tuple[Config, RunningServer, list[str]]
) -> None:
    _, server, urls = legacy_site
    answers = {}
    for url in urls:
        moved = server.request(url)
        location = moved.headers.get("location", "")
        final = server.request(urlsplit(location).path) if moved.status == 301 else moved
        answers[url] = (moved.status, final.status)
    assert answers == dict.fromkeys(urls, (301, 200))
    seed = server.request("/nantongribao/2022/01/24/NW202201242257831752.html")
    assert seed.headers["location"] == f"{server.base_url}a/NW202201242257831752.html"
    same_article = server.request("/emnews/2022/01/07/202201072239307540.html")
    assert same_article.headers["location"] == f"{server.base_url}a/NW202201072239307540.html"


def test_the_jekyll_feed_address_moves_to_the_all_feed(legacy_site: tuple[Config, RunningServer, list[str]]) -> None:
    _, server, _ = legacy_site
    response = server.request("/feed.xml")
    assert (response.status, response.headers["location"]) == (301, f"{server.base_url}feeds/all.atom")
    assert server.request("/feeds/all.atom").status == 200


def test_a_legacy_permalink_of_an_article_never_stored_is_404(legacy_site: tuple[Config, RunningServer, list[str]]) -> None:
    _, server, _ = legacy_site
    assert server.request("/emnews/2021/12/08/202112089999999999.html").status == 404


def test_every_legacy_post_url_moves_permanently_to_a_page_in_nginx_with_the_generated_map(
    legacy_site: tuple[Config, RunningServer, list[str]], tmp_path: Path
) -> None:
    binary = nginx()
    config, _, urls = legacy_site
    output_dir = config.path.parent / "site"
    assert "map $uri $aggregator_legacy" in (output_dir / ".nginx-legacy-map.conf").read_text()
    with running_nginx(binary, output_dir, tmp_path / "nginx") as port:
        answers = {}
        for url in [*urls, "/feed.xml", "/category/nantongribao.html", "/nantongribao/"]:
            status, headers, _ = get(port, url)
            final = get(port, urlsplit(headers.get("location", "")).path)[0] if status == 301 else status
            answers[url] = (status, final)
        assert answers == dict.fromkeys([*urls, "/feed.xml", "/category/nantongribao.html", "/nantongribao/"], (301, 200))
        assert urlsplit(get(port, "/nantongribao/2022/01/24/NW202201242257831752.html")[1]["location"]).path == \
            "/a/NW202201242257831752.html"
