"""The published file layout and the URLs it is served at."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from aggregator.publish.layout import (
    INDEX_FILE,
    OPML_FILE,
    archive_file,
    atom_file,
    file_url,
    gzip_file,
    is_feed_name,
    json_file,
)


@pytest.mark.parametrize("name", ["nantongribao", "all", "a", "yangzhou-wanbao", "k_2", "0day"])
def test_plain_slugs_are_feed_names(name: str) -> None:
    assert is_feed_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "..", ".hidden", "a/b", "a\\b", "南通", "Upper", "a.b", "a b", "a%2e", "-lead", "a\x00", "x" * 65],
)
def test_anything_needing_escaping_or_hiding_is_not_a_feed_name(name: str) -> None:
    assert not is_feed_name(name)


@pytest.mark.parametrize(
    ("file", "url"),
    [
        (INDEX_FILE, "https://news.example/sub/"),
        (OPML_FILE, "https://news.example/sub/feeds.opml"),
        (atom_file("nantongribao"), "https://news.example/sub/feeds/nantongribao.atom"),
        (json_file("all"), "https://news.example/sub/feeds/all.json"),
        (archive_file("nantongribao", 3), "https://news.example/sub/feeds/archive/nantongribao/3.atom"),
    ],
)
def test_each_file_has_one_public_url_under_base_url(file: PurePosixPath, url: str) -> None:
    assert file_url("https://news.example/sub/", file) == url
    assert file_url("https://news.example/sub", file) == url


def test_the_gzip_twin_sits_beside_its_file() -> None:
    assert gzip_file(archive_file("x", 1)) == PurePosixPath("archive/x/1.atom.gz")
