"""parse/html_list.py: list pages read with CSS selectors (tests/data/html_list) → RawItems."""

from __future__ import annotations

import codecs
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config.load import SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched
from aggregator.parse.html_list import extract_body, next_page_url, parse_html_list
from tests.conftest import DATA_DIR

CASES_DIR = DATA_DIR / "html_list"
CASES = sorted(CASES_DIR.glob("*.html"))
PAGES_DIR = CASES_DIR / "pages"
SHANGHAI = ZoneInfo("Asia/Shanghai")
FETCHED_AT = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
LIST_SOURCE = SourceConfig(
    name="paged", kind="html", url="http://127.0.0.1/list_1.html", categories="auto",
    item_selector="ul.news-list > li", link_selector="a.title", date_selector="span.date",
    next_page_selector=".pager a.next", body_selector="div.content", max_pages=5,
)


def _fetched(body: bytes, url: str, content_type: str = "text/html") -> Fetched:
    return Fetched(url=url, final_url=url, status=200, headers={"content-type": content_type},
                   body=body, fetched_at=FETCHED_AT)


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_list_page_gives_the_expected_items(case: Path) -> None:
    expected = json.loads(case.with_name(case.stem + ".expected.json").read_text(encoding="utf-8"))
    source = SourceConfig(**expected["source"], categories="auto")
    parsed = parse_html_list(_fetched(case.read_bytes(), source.url), source, SHANGHAI)
    items = [
        {"url": i.url, "title": i.title, "published": i.published.isoformat() if i.published else None}
        for i in parsed.items
    ]
    assert items == expected["items"]
    assert list(parsed.warnings) == expected.get("warnings", [])


def test_every_case_has_its_expected_twin() -> None:
    assert CASES, "tests/data/html_list holds no cases"
    for case in CASES:
        assert case.with_name(case.stem + ".expected.json").exists(), case.name


def test_charset_in_the_http_header_beats_the_meta_declaration() -> None:
    body = '<html><head><meta charset="gbk"></head><body><ul class="news-list"><li>' \
           '<a class="title" href="/1">南通日报</a></li></ul></body></html>'.encode()
    fetched = _fetched(body, "http://127.0.0.1/", content_type="text/html; charset=utf-8")
    assert parse_html_list(fetched, LIST_SOURCE, SHANGHAI).items[0].title == "南通日报"


def test_byte_order_mark_beats_a_wrong_meta_declaration() -> None:
    # the UTF-8 bytes of 中文 are also valid GB18030: read as the <meta> says, they would be mojibake
    body = codecs.BOM_UTF8 + '<html><head><meta charset="gbk"></head><body><ul class="news-list"><li>' \
        '<a class="title" href="/1">中文</a></li></ul></body></html>'.encode()
    parsed = parse_html_list(_fetched(body, "http://127.0.0.1/"), LIST_SOURCE, SHANGHAI)
    assert [i.title for i in parsed.items] == ["中文"]
    assert parsed.warnings == ()


def test_empty_page_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="parse: the HTML page is empty"):
        parse_html_list(_fetched(b"  \n", "http://127.0.0.1/"), LIST_SOURCE, SHANGHAI)


def test_xhtml_page_with_an_xml_declaration_is_read() -> None:
    body = b'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body>' \
           b'<ul class="news-list"><li><a class="title" href="/x.html">XHTML</a></li></ul></body></html>'
    items = parse_html_list(_fetched(body, "http://127.0.0.1/"), LIST_SOURCE, SHANGHAI).items
    assert [(i.url, i.title) for i in items] == [("http://127.0.0.1/x.html", "XHTML")]


@pytest.mark.parametrize(
    ("page", "expected"),
    [("list_1", "http://127.0.0.1/list_2.html"), ("list_2", "http://127.0.0.1/list_3.html")],
)
def test_next_page_link_is_resolved_against_the_page(page: str, expected: str) -> None:
    fetched = _fetched((PAGES_DIR / f"{page}.html").read_bytes(), f"http://127.0.0.1/{page}.html")
    assert next_page_url(fetched, LIST_SOURCE) == expected


def test_next_page_pointing_back_at_the_page_itself_is_no_next_page() -> None:
    body = b'<html><body><div class="pager"><a class="next" href="list_1.html#">next</a></div></body></html>'
    assert next_page_url(_fetched(body, "http://127.0.0.1/list_1.html"), LIST_SOURCE) is None


def test_source_without_next_page_selector_has_no_next_page() -> None:
    source = LIST_SOURCE.model_copy(update={"next_page_selector": None})
    body = (PAGES_DIR / "list_1.html").read_bytes()
    assert next_page_url(_fetched(body, "http://127.0.0.1/list_1.html"), source) is None


def test_article_body_is_the_html_of_the_body_selector() -> None:
    body = (PAGES_DIR / "article_with_body.html").read_bytes()
    html = extract_body(_fetched(body, "http://127.0.0.1/a/1.html"), LIST_SOURCE)
    assert html == (
        '<div class="content"><p>1月20日，中天科技发布“绿色低碳制造行动方案”。</p>'
        '<p><img src="../img/zt.jpg"></p></div>'
    )


def test_article_page_without_the_body_element_has_no_body() -> None:
    body = b"<html><body><div class='other'>x</div></body></html>"
    assert extract_body(_fetched(body, "http://127.0.0.1/a/1.html"), LIST_SOURCE) is None


# --- linear time over hostile pages (issue 10) -------------------------------------------------------

#: generous; the former `\d+\s*(?:秒|…)\s*前` took 19 s over 20,000 digits (quadratic)
LINEAR_BOUND_SECONDS = 1.0


@pytest.mark.parametrize(
    "date_text", ["1" * 100_000, "2022-1" + " " * 100_000 + "x", "1-1 " * 25_000, "12月" * 33_000],
    ids=["digit-run", "date-then-spaces", "month-day-repeats", "chinese-month-repeats"],
)
def test_a_100_kb_date_label_is_searched_in_linear_time(date_text: str) -> None:
    page = (f'<ul class="news-list"><li><a class="title" href="/a/1.html">t</a>'
            f'<span class="date">{date_text}</span></li></ul>').encode()
    started = time.monotonic()
    feed = parse_html_list(_fetched(page, "http://127.0.0.1/list_1.html"), LIST_SOURCE, SHANGHAI)
    assert time.monotonic() - started < LINEAR_BOUND_SECONDS
    assert feed.items[0].published is None


def test_a_100_kb_run_of_meta_tags_is_sniffed_in_linear_time() -> None:
    page = b"<meta " * 20_000 + b'<ul class="news-list"></ul>'
    started = time.monotonic()
    parse_html_list(_fetched(page, "http://127.0.0.1/list_1.html"), LIST_SOURCE, SHANGHAI)
    assert time.monotonic() - started < LINEAR_BOUND_SECONDS
