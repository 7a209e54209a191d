"""The published tree served by nginx with the configuration docs/subscribing.md gives ops.

Runs the documented `server` block verbatim (only the listen address and the folder are put in),
so the documentation cannot drift from what publish writes. Skipped where nginx is not installed.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.models import Item, ItemChange
from aggregator.publish.run import publish_categories
from aggregator.storage import open_storage
from tests.conftest import REPO_ROOT
from tests.test_serve import SERVED_MEDIA_TYPES

DOCUMENTED_ROOT = "/srv/aggregator/store/feeds"
START_SECONDS = 10.0
T0 = datetime(2022, 1, 23, 16, 0, tzinfo=UTC)

#: the frame around the documented block: what a distribution's nginx.conf would hold
NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
{documented}
}}
"""


def nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return found


def documented_config(output_dir: Path, port: int) -> str:
    text = (REPO_ROOT / "docs" / "subscribing.md").read_text(encoding="utf-8")
    match = re.search(r"```nginx\n(.*?)```", text, re.DOTALL)
    assert match is not None, "docs/subscribing.md has no nginx block"
    block = match.group(1)
    assert "listen 80;" in block and DOCUMENTED_ROOT in block
    return block.replace("listen 80;", f"listen 127.0.0.1:{port};").replace(DOCUMENTED_ROOT, str(output_dir))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def nginx_port(tmp_path: Path) -> Iterator[int]:
    binary = nginx()
    config = Config(
        path=tmp_path / "feeds.toml",
        settings=Settings(base_url="https://news.example/", output_dir=Path("feeds"), max_items_per_feed=5),
        categories={"nantongribao": CategoryConfig(title="南通日报新闻")},
        sources=(SourceConfig(name="nt", url="https://example.org/nt.xml", categories=("nantongribao",)),),
    )
    (tmp_path / "feeds.toml").write_text("secret = true\n")
    storage = open_storage(str(tmp_path / "store.db"))
    try:
        items = [
            Item(article_id=f"NW{n:018d}", title=f"新闻 {n}", url=f"https://finews.example/a/{n}.html",
                 html=f"<p>正文 {n}</p>" * 20, published=T0 + timedelta(minutes=n), updated=T0 + timedelta(minutes=n),
                 categories=frozenset({"nantongribao"}), sources=frozenset({"nt"}), content_hash=f"h{n}")
            for n in range(12)
        ]
        storage.apply_update([ItemChange("insert", i, "nt", i.content_hash) for i in items], None)
        publish_categories(storage, config)
    finally:
        storage.close()
    (tmp_path / "feeds" / ".websub-pending.json").write_text("[]")

    with running_nginx(binary, tmp_path / "feeds", tmp_path / "nginx") as port:
        yield port


@contextlib.contextmanager
def running_nginx(binary: str, output_dir: Path, prefix: Path) -> Iterator[int]:
    """nginx with the documented server block over `output_dir`, listening on a free loopback port."""
    prefix.mkdir()
    port = free_port()
    # a root master hands requests to an unprivileged worker, which could not enter pytest's 0700 tmp_path
    user = "user root;" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, prefix=prefix, documented=documented_config(output_dir, port)))
    process = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert process.poll() is None, (prefix / "error.log").read_text(errors="replace")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=START_SECONDS)


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=START_SECONDS)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_nginx_serves_the_precompressed_twin_with_the_feed_media_type(nginx_port: int, tmp_path: Path) -> None:
    status, headers, body = get(nginx_port, "/feeds/nantongribao.atom", {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    assert body == (tmp_path / "feeds" / "nantongribao.atom.gz").read_bytes()
    assert gzip.decompress(body) == (tmp_path / "feeds" / "nantongribao.atom").read_bytes()
    status, _, _ = get(nginx_port, "/feeds/nantongribao.atom", {"If-None-Match": headers["etag"],
                                                                 "Accept-Encoding": "gzip"})
    assert status == 304


@pytest.mark.parametrize(("path", "content_type"), SERVED_MEDIA_TYPES)
def test_nginx_serves_every_published_url_with_the_media_type_aggregator_serve_gives(nginx_port: int, path: str, content_type: str) -> None:
    status, headers, _ = get(nginx_port, path)
    assert (status, headers["content-type"]) == (200, content_type)


@pytest.mark.parametrize(
    "path",
    ["/feeds/.websub-pending.json", "/feeds/archive/nantongribao/.sealed-pages", "/feeds/nantongribao.atom.gz",
     "/feeds/../feeds.toml", "/feeds/%2e%2e/feeds.toml", "/feeds.toml", "/index.html", "/feeds/nosuch.atom"],
)
def test_nginx_keeps_bookkeeping_and_everything_outside_the_feed_set_private(nginx_port: int, path: str) -> None:
    status, _, body = get(nginx_port, path)
    assert status in (400, 404)
    assert b"secret" not in body


def test_nginx_answers_410_for_an_article_retention_removed_and_404_for_an_unknown_one(
    nginx_port: int, tmp_path: Path
) -> None:
    (tmp_path / "feeds" / "a" / "NW000000000000000099.gone").write_bytes(b"")
    assert get(nginx_port, "/a/NW000000000000000099.html")[0] == 410
    assert get(nginx_port, "/a/NW000000000000000098.html")[0] == 404
    assert get(nginx_port, "/a/NW000000000000000003.html")[0] == 200
