"""clean/urls.py: absolute_url and strip_tracking_params as table tests."""

from __future__ import annotations

import pytest

from aggregator.clean.rules import HostRule
from aggregator.clean.urls import (
    absolute_url,
    build_host_index,
    is_tracking_param,
    matches_host_index,
    strip_tracking_params,
)

ITEM_URL = "http://finance.eastmoney.com/news/1354,202201212257099936.html"

ABSOLUTE_CASES = [
    ("/a/202201212257099936.html", ITEM_URL, "http://finance.eastmoney.com/a/202201212257099936.html"),
    ("1355,202112082207139110.html", ITEM_URL, "http://finance.eastmoney.com/news/1355,202112082207139110.html"),
    ("//finews.withounder.com/emnews/", ITEM_URL, "http://finews.withounder.com/emnews/"),
    ("//finews.withounder.com/emnews/", "https://a.example/", "https://finews.withounder.com/emnews/"),
    ("../img/a.png", "https://a.example/x/y/z.html", "https://a.example/x/img/a.png"),
    ("?page=2", ITEM_URL, ITEM_URL + "?page=2"),
    ("#p2", ITEM_URL, ITEM_URL + "#p2"),
    ("HTTPS://Dfscdn.dfcfw.com/download/D1.jpg", None, "https://Dfscdn.dfcfw.com/download/D1.jpg"),
    ("  https://a.example/x  ", None, "https://a.example/x"),
    ("https://a.example/a b.jpg", None, "https://a.example/a%20b.jpg"),
    ("http:g", "http://a.example/b/c", "http://a.example/b/g"),
    ("mailto:news@example.cn", ITEM_URL, "mailto:news@example.cn"),
    ("MAILTO:news@example.cn", None, "mailto:news@example.cn"),
    ("/relative/kept.html", None, "/relative/kept.html"),
    ("/relative/kept.html", "javascript:alert(1)", "/relative/kept.html"),
    ("https://a.example/x", "not a url", "https://a.example/x"),
]

REFUSED_CASES = [
    ("javascript:alert(1)", ITEM_URL),
    ("JaVaScRiPt:alert(1)", ITEM_URL),
    ("jav\tascript:alert(1)", ITEM_URL),
    ("jav\nascript:alert(1)", ITEM_URL),
    ("\x01javascript:alert(1)", ITEM_URL),
    (" javascript:alert(1)", ITEM_URL),
    ("vbscript:msgbox(1)", ITEM_URL),
    ("data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", ITEM_URL),
    ("data:image/png;base64,iVBORw0KGgo=", ITEM_URL),
    ("file:///etc/passwd", ITEM_URL),
    ("livescript:alert(1)", ITEM_URL),
    ("", ITEM_URL),
    ("   ", ITEM_URL),
    ("http://", ITEM_URL),
    ("http:///path-without-host", ITEM_URL),
    ("http://[::1", ITEM_URL),
    ("http://a.example:99999999999/", ITEM_URL),
    ("https://a.example/\x00x", ITEM_URL),
    ("http:relative-without-base", None),
]


@pytest.mark.parametrize(("url", "base", "expected"), ABSOLUTE_CASES, ids=[c[0] for c in ABSOLUTE_CASES])
def test_absolute_url_resolves_against_the_item_url(url: str, base: str | None, expected: str) -> None:
    assert absolute_url(url, base) == expected


@pytest.mark.parametrize(("url", "base"), REFUSED_CASES, ids=[repr(c[0]) for c in REFUSED_CASES])
def test_absolute_url_refuses_script_schemes_and_garbage(url: str, base: str | None) -> None:
    assert absolute_url(url, base) is None


STRIP_CASES = [
    ("https://a.example/x?utm_source=rss&utm_medium=feed", "https://a.example/x"),
    ("https://a.example/x?id=7&utm_source=rss&b=2", "https://a.example/x?id=7&b=2"),
    ("https://a.example/x?UTM_Campaign=x&id=1", "https://a.example/x?id=1"),
    ("https://a.example/x?utm%5Fsource=x&id=1", "https://a.example/x?id=1"),
    ("https://a.example/x?fbclid=abc#frag", "https://a.example/x#frag"),
    ("https://a.example/x?gclid=1&msclkid=2&yclid=3&mc_cid=4&_hsenc=5", "https://a.example/x"),
    ("https://a.example/x?mtm_campaign=a&pk_kwd=b&p=3", "https://a.example/x?p=3"),
    ("https://a.example/x?spm=a2c4g.11186623&page=2#top", "https://a.example/x?page=2#top"),
    ("https://mp.weixin.qq.com/s?__biz=MzA&mid=265&idx=1&sn=ab&chksm=84&scene=21",
     "https://mp.weixin.qq.com/s?__biz=MzA&mid=265&idx=1&sn=ab"),
    ("https://www.bilibili.com/video/BV1?share_source=copy&p=2", "https://www.bilibili.com/video/BV1?p=2"),
    ("http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202201242257831752&utm_source=x",
     "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202201242257831752"),
]

UNCHANGED_CASES = [
    "http://finance.eastmoney.com/news/1354,202201212257099936.html",
    "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202201242257831752",
    # site-scoped names stay on other sites
    "https://a.example/x?scene=21&share_source=copy",
    # parameter values are never touched, nor encodings or order of what stays
    "https://a.example/x?q=utm_source&b=%E4%B8%AD&a=1",
    "https://a.example/x?",
    "https://a.example/x#?utm_source=frag-only",
    "not a url?utm",
]


@pytest.mark.parametrize(("url", "expected"), STRIP_CASES, ids=[c[0] for c in STRIP_CASES])
def test_strip_tracking_params_removes_vendor_parameters(url: str, expected: str) -> None:
    assert strip_tracking_params(url) == expected


@pytest.mark.parametrize("url", UNCHANGED_CASES)
def test_strip_tracking_params_leaves_other_urls_byte_identical(url: str) -> None:
    assert strip_tracking_params(url) == url


def test_content_naming_parameters_are_never_tracking_params() -> None:
    for name in ("infoCode", "infocode", "id", "p", "page", "mid", "idx", "sn", "__biz", "artCode"):
        assert not is_tracking_param(name, "mp.weixin.qq.com"), name


def test_host_rules_match_subdomains_and_path_prefixes_only() -> None:
    index = build_host_index((HostRule("xueqiu.com", "/S/"), HostRule("quote.eastmoney.com")))
    assert matches_host_index("https://xueqiu.com/S/SH600000", index)
    assert matches_host_index("http://www.quote.eastmoney.com/unify/r/1.600160", index)
    assert matches_host_index("//QUOTE.eastmoney.com./unify/r/1.600160", index)
    assert not matches_host_index("https://xueqiu.com/today", index)
    assert not matches_host_index("https://evilquote.eastmoney.com.example/", index)
    assert not matches_host_index("https://a.example/?u=quote.eastmoney.com", index)
    assert not matches_host_index("https://quote.eastmoney.com@a.example/", index)
    assert not matches_host_index("http://[::1", index)
