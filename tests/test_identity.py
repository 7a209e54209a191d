"""article_id: the documented fallback chain, and one id per eastmoney article across URL shapes."""

from __future__ import annotations

import hashlib

import pytest

from aggregator.errors import ItemError
from aggregator.identity import article_id, canonical_url, normalise_info_code
from aggregator.models import RawItem

SEED_ID = "NW202201242257831752"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (RawItem(explicit_id="NW202201242257831752", url="https://example.com/x"), SEED_ID),
        (RawItem(explicit_id="202201242257831752"), SEED_ID),
        (RawItem(url="http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202201242257831752"), SEED_ID),
        (RawItem(url="https://choicewzp1.eastmoney.com/html_News/NewsShare.html?INFOCODE=202201242257831752"), SEED_ID),
        (RawItem(url="http://finance.eastmoney.com/news/1344,202201242257831752.html"), SEED_ID),
        (RawItem(url="https://finance.eastmoney.com/a/202201242257831752.html"), SEED_ID),
        (RawItem(guid="http://stock.eastmoney.com/news/11060,202201242257831752.html", url="https://x.example/1"), SEED_ID),
        (RawItem(guid="urn:uuid:1234", url="https://x.example/1"), "guid:src:urn:uuid:1234"),
        (RawItem(guid="nw202201242257831752", url="https://x.example/1"), SEED_ID),
        (RawItem(guid="202201242257831752", url="https://x.example/1"), "guid:src:202201242257831752"),
        (RawItem(guid="https://News.Example.com/a?utm_source=rss&id=3#top"), "url:https://news.example.com/a?id=3"),
        (RawItem(url="https://news.example.com/a/1.html?utm_medium=feed"), "url:https://news.example.com/a/1.html"),
        (RawItem(explicit_id="not a code", url="https://news.example.com/b"), "url:https://news.example.com/b"),
    ],
    ids=[
        "explicit-infocode", "explicit-digits-normalised", "infocode-query", "infocode-param-any-case",
        "news-column-url", "a-url", "eastmoney-guid-beats-plain-link", "opaque-guid-namespaced-by-source",
        "nw-code-guid-is-the-article-id", "bare-digits-guid-stays-namespaced",
        "url-guid-canonicalised", "link-without-tracking", "invalid-explicit-id-falls-through",
    ],
)
def test_article_id_follows_the_fallback_chain(raw: RawItem, expected: str) -> None:
    assert article_id(raw, "src") == expected


def test_item_with_only_a_title_gets_a_stable_content_hash_id() -> None:
    first = article_id(RawItem(title="标题", html="<p>正文</p>"), "src")
    assert first.startswith("hash:src:")
    assert first == article_id(RawItem(title="标题", html="<p>正文</p>"), "src")
    assert first != article_id(RawItem(title="标题", html="<p>另一篇</p>"), "src")


def test_a_feed_title_is_hashed_as_its_plain_text_so_ids_given_when_parsers_cleaned_titles_stay() -> None:
    # before RawItem titles stayed raw, parse/feed.py made this title "南通 日报", and the id hashed that
    expected = "hash:src:" + hashlib.sha256("南通 日报\x00<p>正文</p>".encode()).hexdigest()[:24]
    raw = RawItem(title="<b>南通</b>\n   日报&nbsp;", html="<p>正文</p>")
    assert article_id(raw, "src", from_feed=True) == expected


def test_a_json_or_html_list_title_is_hashed_as_parsed() -> None:
    expected = "hash:src:" + hashlib.sha256("南通  日报\x00".encode()).hexdigest()[:24]
    assert article_id(RawItem(title="南通  日报"), "src") == expected


def test_a_feed_item_whose_title_is_only_markup_has_nothing_to_identify_it() -> None:
    with pytest.raises(ItemError, match="identity: item has no id"):
        article_id(RawItem(title="<b> </b>"), "src", from_feed=True)


def test_item_with_nothing_to_identify_it_is_an_item_error() -> None:
    with pytest.raises(ItemError, match="identity: item has no id"):
        article_id(RawItem(), "src")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("NW202201242257831752", SEED_ID), ("nw202201242257831752", SEED_ID), (" 202201242257831752 ", SEED_ID),
     ("AN202201241541234567", "AN202201241541234567"), ("12345", None), ("", None)],
)
def test_normalise_info_code(value: str, expected: str | None) -> None:
    assert normalise_info_code(value) == expected


def test_canonical_url_keeps_meaningful_query_and_drops_fragment() -> None:
    assert canonical_url("HTTP://Example.COM/p?id=1&utm_campaign=x#frag") == "http://example.com/p?id=1"
