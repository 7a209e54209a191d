"""The feed server through a real uvicorn on 127.0.0.1: 200, 304, gzip, HEAD, Cache-Control, 404s, traversal."""

from __future__ import annotations

import dataclasses
import gzip
import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path, PurePosixPath
from typing import Any

import feedparser
import pytest
import uvicorn

from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.models import Item, ItemChange
from aggregator.publish.run import publish_categories
from aggregator.publish.files import write_with_gzip
from aggregator.publish.layout import INDEX_FILE, OPML_FILE, archive_file, atom_file, json_file, site_path
from aggregator.serve.app import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    accepts_gzip,
    create_app,
    parse_listen,
    resolve_path,
)
from aggregator.storage import Storage, open_storage

T0 = datetime(2022, 1, 23, 16, 0, tzinfo=UTC)
SECRET = "password = hunter2"
WAIT_SECONDS = 10.0


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class RunningServer:
    """uvicorn serving `app` on a socket bound before start, so the port is known in advance."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, app: ASGIApp, **options: Any) -> None:
        """`options` go to uvicorn.Config (tests/test_fastlane.py passes its protocol as `http`)."""
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", **options)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=WAIT_SECONDS)
        self.socket.close()

    def request(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Response:
        """http.client sends `path` exactly as given: no dot-segment removal, no re-encoding."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_SECONDS)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def raw_request(self, target: bytes) -> int:
        """Send a request line byte for byte; the status code of the answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT_SECONDS) as conn:
            conn.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        return int(answer.split(b" ", 2)[1])


def make_config(tmp_path: Path, base_url: str) -> Config:
    return Config(
        path=tmp_path / "feeds.toml",
        settings=Settings(base_url=base_url, output_dir=Path("store/feeds"), max_items_per_feed=5,
                          interval=timedelta(minutes=15)),
        categories={"nantongribao": CategoryConfig(title="南通日报新闻"), "yangzhou": CategoryConfig(title="扬州日报新闻")},
        sources=(
            SourceConfig(name="nt", url="https://example.org/nt.xml", categories=("nantongribao",),
                         interval=timedelta(minutes=10)),
            SourceConfig(name="nt-fast", url="https://example.org/nt2.xml", categories=("nantongribao",),
                         interval=timedelta(minutes=2), enabled=False),
        ),
    )


def make_item(n: int, **changes: object) -> Item:
    item = Item(
        article_id=f"NW{n:018d}", title=f"新闻 {n}", url=f"https://finews.example/a/{n}.html", html=f"<p>正文 {n}</p>",
        published=T0 + timedelta(minutes=n), updated=T0 + timedelta(minutes=n),
        categories=frozenset({"nantongribao"}), sources=frozenset({"nt"}), content_hash=f"h{n}",
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


@dataclass
class Site:
    config: Config
    storage: Storage
    server: RunningServer

    @property
    def output_dir(self) -> Path:
        return self.config.path.parent / "store" / "feeds"

    def add(self, items: list[Item]) -> None:
        self.storage.apply_update([ItemChange("insert", i, "nt", i.content_hash) for i in items], None)
        publish_categories(self.storage, self.config)


def build_site(folder: Path) -> Iterator[Site]:
    """23 items in nantongribao (5 per feed: 4 archive pages), published and served."""
    (folder / "feeds.toml").write_text(SECRET)  # what a traversal would love to read
    server = RunningServer()
    config = make_config(folder, server.base_url)
    storage = open_storage(str(folder / "store" / "aggregator.db"))
    try:
        built = Site(config, storage, server)
        built.add([make_item(n) for n in range(23)])
        server.start(create_app(config))
        yield built
    finally:
        server.stop()
        storage.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """For tests that change files under the server."""
    yield from build_site(tmp_path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One site shared by the tests that only read."""
    yield from build_site(tmp_path_factory.mktemp("served"))


def test_a_feed_is_served_with_its_validators_and_cache_lifetime(served: Site) -> None:
    response = served.server.request("/feeds/nantongribao.atom")
    assert response.status == 200
    assert response.body == (served.output_dir / "nantongribao.atom").read_bytes()
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert response.headers["etag"].startswith('"') and not response.headers["etag"].startswith("W/")
    mtime = (served.output_dir / "nantongribao.atom").stat().st_mtime
    assert response.headers["last-modified"] == formatdate(mtime, usegmt=True)
    # the enabled source polls every 10 minutes; the disabled 2-minute one does not count
    assert response.headers["cache-control"] == "public, max-age=600"
    assert response.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in response.headers


def test_gzip_is_served_from_the_precompressed_twin_when_accepted(served: Site) -> None:
    plain = served.server.request("/feeds/nantongribao.atom")
    zipped = served.server.request("/feeds/nantongribao.atom", {"Accept-Encoding": "br, gzip;q=0.8"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.body == (served.output_dir / "nantongribao.atom.gz").read_bytes()
    assert gzip.decompress(zipped.body) == plain.body
    assert zipped.headers["etag"] != plain.headers["etag"]
    assert zipped.headers["vary"] == "Accept-Encoding"
    refused = served.server.request("/feeds/nantongribao.atom", {"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


def test_a_gzip_twin_older_than_its_feed_is_not_served(site: Site) -> None:
    plain = site.output_dir / "nantongribao.atom"
    stale = site.output_dir / "nantongribao.atom.gz"
    os.utime(stale, ns=(plain.stat().st_mtime_ns - 10**9, plain.stat().st_mtime_ns - 10**9))
    response = site.server.request("/feeds/nantongribao.atom", {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.body == plain.read_bytes()


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_a_matching_etag_gets_304(served: Site, encoding: str) -> None:
    headers = {"Accept-Encoding": encoding}
    etag = served.server.request("/feeds/nantongribao.atom", headers).headers["etag"]
    response = served.server.request("/feeds/nantongribao.atom", {**headers, "If-None-Match": f'"other", {etag}'})
    assert response.status == 304
    assert response.body == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "public, max-age=600"
    assert served.server.request("/feeds/nantongribao.atom", {**headers, "If-None-Match": '"other"'}).status == 200


def test_if_modified_since_gets_304_unless_the_file_is_newer(served: Site) -> None:
    last_modified = served.server.request("/feeds/nantongribao.atom").headers["last-modified"]
    assert served.server.request("/feeds/nantongribao.atom", {"If-Modified-Since": last_modified}).status == 304
    earlier = formatdate(time.time() - 86400 * 400, usegmt=True)
    assert served.server.request("/feeds/nantongribao.atom", {"If-Modified-Since": earlier}).status == 200
    assert served.server.request("/feeds/nantongribao.atom", {"If-Modified-Since": "not a date"}).status == 200
    # RFC 9110 §13.1.3: with If-None-Match present, If-Modified-Since is ignored
    both = {"If-Modified-Since": last_modified, "If-None-Match": '"stale"'}
    assert served.server.request("/feeds/nantongribao.atom", both).status == 200


def test_a_query_string_does_not_change_what_is_served(served: Site) -> None:
    # readers and proxies add cache-busting queries; the path alone names the file
    plain = served.server.request("/feeds/nantongribao.atom")
    busted = served.server.request("/feeds/nantongribao.atom?_=1700000000&x=%2e%2e")
    assert (busted.status, busted.body, busted.headers["etag"]) == (200, plain.body, plain.headers["etag"])
    assert served.server.request("/feeds/../feeds.toml?x=1").status == 404


def test_head_answers_the_get_headers_without_a_body(served: Site) -> None:
    get = served.server.request("/feeds/nantongribao.atom")
    head = served.server.request("/feeds/nantongribao.atom", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == str(len(get.body))
    assert head.headers["etag"] == get.headers["etag"]


def test_a_republished_feed_is_served_with_a_new_etag(site: Site) -> None:
    before = site.server.request("/feeds/nantongribao.atom")
    site.add([make_item(99)])
    after = site.server.request("/feeds/nantongribao.atom", {"If-None-Match": before.headers["etag"]})
    assert after.status == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert "新闻 99" in {e.title for e in feedparser.parse(after.body).entries}


def test_a_feed_replaced_while_being_read_is_never_served_half_written(site: Site) -> None:
    path = site.output_dir / "nantongribao.atom"
    versions = [path.read_bytes(), path.read_bytes().replace(b"</feed>", b"<!-- v2 -->\n</feed>")]
    stop = threading.Event()

    def republish() -> None:
        for n in range(200):
            if stop.is_set():
                return
            write_with_gzip(path, versions[n % 2])

    writer = threading.Thread(target=republish, daemon=True)
    writer.start()
    try:
        bodies = [site.server.request("/feeds/nantongribao.atom").body for _ in range(60)]
    finally:
        stop.set()
        writer.join(timeout=WAIT_SECONDS)
    assert set(bodies) <= set(versions)


def test_following_prev_archive_over_http_reaches_every_item_exactly_once(served: Site) -> None:
    url = f"{served.server.base_url}feeds/nantongribao.atom"
    ids: list[str] = []
    for _ in range(50):  # bounded: a link loop fails instead of hanging
        response = served.server.request(url.removeprefix(served.server.base_url.rstrip("/")))
        assert response.status == 200
        parsed = feedparser.parse(response.body)
        assert not parsed.bozo
        ids += [entry.id for entry in parsed.entries]
        prev = [link.href for link in parsed.feed.links if link.rel == "prev-archive"]
        if not prev:
            break
        url = prev[0]
    assert len(ids) == 23
    assert set(ids) == {f"tag:aggregator,2022:NW{n:018d}" for n in range(23)}


def test_archive_pages_are_cached_long_once_sealed(served: Site) -> None:
    sealed = served.server.request("/feeds/archive/nantongribao/1.atom")
    newest = served.server.request("/feeds/archive/nantongribao/4.atom")
    assert (sealed.status, newest.status) == (200, 200)
    assert sealed.headers["cache-control"] == "public, max-age=86400"
    assert newest.headers["cache-control"] == "public, max-age=600"


def test_a_category_without_sources_is_cached_for_the_default_interval(served: Site) -> None:
    assert served.server.request("/feeds/yangzhou.atom").headers["cache-control"] == "public, max-age=900"
    assert served.server.request("/feeds/all.atom").headers["cache-control"] == "public, max-age=600"


#: every kind of published URL with its media type; tests/test_publish_nginx.py holds nginx to it too
SERVED_MEDIA_TYPES = [
    ("/", "text/html; charset=utf-8"),
    ("/feeds.opml", "text/x-opml; charset=utf-8"),
    ("/feeds/all.atom", "application/atom+xml; charset=utf-8"),
    ("/feeds/nantongribao.json", "application/feed+json; charset=utf-8"),
    ("/feeds/archive/nantongribao/1.atom", "application/atom+xml; charset=utf-8"),
    ("/a/NW000000000000000003.html", "text/html; charset=utf-8"),
    ("/c/nantongribao.html", "text/html; charset=utf-8"),
    ("/opensearch.xml", "application/opensearchdescription+xml; charset=utf-8"),
]


@pytest.mark.parametrize(("path", "content_type"), SERVED_MEDIA_TYPES)
def test_every_kind_of_published_url_is_served_gzipped_with_its_media_type(served: Site, path: str, content_type: str) -> None:
    response = served.server.request(path, {"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    "path",
    [
        "/feeds/nosuch.atom", "/feeds/", "/feeds", "/feeds/nantongribao.rss", "/index.html",
        "/feeds/nantongribao.atom.gz", "/feeds/.websub-pending.json", "/feeds/archive/nantongribao/0.atom",
        "/feeds/archive/nantongribao/99.atom", "/feeds/archive/nantongribao/.sealed-pages",
        "/feeds/NANTONGRIBAO.atom", "/store/feeds/nantongribao.atom", "/feeds.toml",
    ],
)
def test_anything_outside_the_feed_set_is_404(served: Site, path: str) -> None:
    assert served.server.request(path).status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/feeds/../feeds.toml", "/feeds/../../feeds.toml", "/../feeds.toml", "/feeds/%2e%2e/feeds.toml",
        "/feeds/%2E%2E/%2E%2E/feeds.toml", "/feeds%2f..%2f..%2ffeeds.toml", "/feeds/..%2f..%2ffeeds.toml",
        "/feeds/%252e%252e/%252e%252e/feeds.toml", "/feeds/..%5c..%5cfeeds.toml", "/feeds/..\\..\\feeds.toml",
        "/feeds/nantongribao.atom%00", "/feeds/%00../feeds.toml", "/feeds/archive/../../../feeds.toml",
        "/feeds/archive/nantongribao/..%2f..%2f..%2f..%2ffeeds.toml", "//feeds.toml", "/feeds/....//feeds.toml",
        "/feeds/%c0%ae%c0%ae/feeds.toml",
    ],
)
def test_traversal_attempts_are_404_and_leak_nothing(served: Site, path: str) -> None:
    response = served.server.request(path)
    assert response.status == 404
    assert SECRET.encode() not in response.body


def test_a_raw_nul_byte_in_the_path_is_refused(served: Site) -> None:
    assert served.server.raw_request(b"/feeds/nantongribao.atom\x00/../../feeds.toml") in (400, 404)


def test_only_get_and_head_are_allowed(served: Site) -> None:
    response = served.server.request("/feeds/nantongribao.atom", method="POST")
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    [
        "/category/nantongribao.html", "/category/nantongribao/", "/nantongribao/", "/category/NanTongRiBao.html",
        "/category/%E5%8D%97%E9%80%9A%E6%97%A5%E6%8A%A5.html", "/category/nantongribao.html?from=nw",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_legacy_category_page_moves_permanently_to_its_category_page(served: Site, path: str, method: str) -> None:
    response = served.server.request(path, method=method)
    assert response.status == 301
    assert response.headers["location"] == f"{served.server.base_url}c/nantongribao.html"
    assert served.server.request("/c/nantongribao.html", method=method).status == 200


def test_a_legacy_category_without_a_page_moves_to_its_feed(site: Site) -> None:
    publish_categories(site.storage, site.config)
    (site.output_dir / "c" / "nantongribao.html").unlink()
    response = site.server.request("/category/nantongribao.html")
    assert (response.status, response.headers["location"]) == (301, f"{site.server.base_url}feeds/nantongribao.atom")


@pytest.mark.parametrize(
    "path",
    ["/category/nosuchpaper.html", "/nosuchpaper/", "/category/zhongqingchenbao.html", "/category/.html",
     "/category/all-news.html", "/category/" + "nantongribao" * 50 + ".html"],
)
def test_a_legacy_category_without_a_published_feed_is_404(served: Site, path: str) -> None:
    response = served.server.request(path)
    assert response.status == 404
    assert "location" not in response.headers


@pytest.mark.parametrize(
    "path",
    [
        "/category/../nantongribao.html", "/../nantongribao/", "/category/..%2fnantongribao.html",
        "/category/%2e%2e%2fnantongribao.html", "/category/%2E%2E/nantongribao.html", "/category/..%5cnantongribao.html",
        "/category/..\\nantongribao.html", "/category/nantongribao%00.html", "/category/nantongribao%2f.html",
        "/category/%2fnantongribao/", "/%2e%2e%2fnantongribao/", "/category/....nantongribao.html",
    ],
)
def test_traversal_looking_legacy_paths_are_404(served: Site, path: str) -> None:
    response = served.server.request(path)
    assert response.status == 404
    assert "location" not in response.headers
    assert SECRET.encode() not in response.body


def test_a_legacy_link_is_answered_only_to_get_and_head(served: Site) -> None:
    assert served.server.request("/category/nantongribao.html", method="POST").status == 404


def test_a_renamed_legacy_slug_redirects_once_its_feed_is_published(site: Site) -> None:
    assert site.server.request("/category/zhongqingchenbao.html").status == 404
    categories = {**site.config.categories, "chongqingchenbao": CategoryConfig(title="重庆晨报新闻")}
    publish_categories(site.storage, site.config.model_copy(update={"categories": categories}))
    response = site.server.request("/category/zhongqingchenbao.html")
    assert response.status == 301
    assert response.headers["location"] == f"{site.server.base_url}c/chongqingchenbao.html"


def test_a_symlink_in_the_output_dir_is_not_followed(site: Site) -> None:
    (site.output_dir / "leak.atom").symlink_to(site.config.path)
    assert site.server.request("/feeds/leak.atom").status == 404


def test_healthz_reports_liveness_and_extra_routes_are_mounted(tmp_path: Path) -> None:
    alive = {"value": True}

    async def metrics(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"feeds_total 3\n"})

    server = RunningServer()
    config = make_config(tmp_path, server.base_url)
    server.start(create_app(config, extra_routes=[("/metrics", metrics)], is_alive=lambda: alive["value"]))
    try:
        healthy = server.request("/healthz")
        assert (healthy.status, healthy.body) == (200, b"ok\n")
        assert healthy.headers["cache-control"] == "no-store"
        alive["value"] = False
        assert server.request("/healthz").status == 503
        assert server.request("/metrics").body == b"feeds_total 3\n"
        assert server.request("/feeds/nantongribao.atom").status == 404  # nothing published yet
    finally:
        server.stop()


@pytest.mark.parametrize(
    "file",
    [INDEX_FILE, OPML_FILE, atom_file("nantongribao"), atom_file("all"), json_file("yangzhou"),
     archive_file("nantongribao", 1), archive_file("all", 123)],
)
def test_every_published_file_is_served_at_the_path_publish_links_it_under(file: PurePosixPath) -> None:
    resource = resolve_path("/" + site_path(file))
    assert resource is not None and resource.file == file


@pytest.mark.parametrize(
    ("header", "accepted"),
    [("gzip", True), ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.5", True), ("*", True),
     ("x-gzip", True), ("gzip;q=0", False), ("deflate", False), ("", False), ("gzip;q=zero", False)],
)
def test_accept_encoding_is_read_with_its_q_values(header: str, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9000", ("::1", 9000)), ("0.0.0.0:80", ("0.0.0.0", 80))],
)
def test_listen_addresses_are_parsed(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["8080", "localhost", ":8080", "host:port"])
def test_a_malformed_listen_address_is_refused(listen: str) -> None:
    with pytest.raises(ValueError, match="serve: listen address must be HOST:PORT"):
        parse_listen(listen)
