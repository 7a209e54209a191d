"""parse/json_api.py: list documents of newspaper JSON APIs (tests/data/eastmoney) → RawItems."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config.load import JsonFields, SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched, RawItem
from aggregator.parse import PARSERS
from aggregator.parse.json_api import (
    EASTMONEY_DETAIL_URL,
    detail_url_for,
    parse_json_api,
    read_detail_body,
)
from tests.conftest import DATA_DIR

CASES_DIR = DATA_DIR / "eastmoney"
CASES = sorted(p for p in CASES_DIR.glob("*.json") if not p.name.endswith(".expected.json"))
SHANGHAI = ZoneInfo("Asia/Shanghai")
FETCHED_AT = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
PRESET = SourceConfig(name="eastmoney-regional", kind="json", url="http://127.0.0.1/api", preset="eastmoney",
                      categories="auto")


def _fetched(body: bytes, url: str = "http://127.0.0.1/api", content_type: str = "application/json") -> Fetched:
    return Fetched(url=url, final_url=url, status=200, headers={"content-type": content_type},
                   body=body, fetched_at=FETCHED_AT)


def _as_dict(item: RawItem) -> dict[str, object]:
    return {
        "guid": item.guid, "url": item.url, "title": item.title, "html": item.html, "summary": item.summary,
        "published": item.published.isoformat() if item.published else None,
        "explicit_id": item.explicit_id, "medium": item.medium,
    }


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_list_document_gives_the_expected_items(case: Path) -> None:
    expected = json.loads(case.with_name(case.stem + ".expected.json").read_text(encoding="utf-8"))
    source = SourceConfig(**expected["source"], categories="auto")
    fetched = _fetched(case.read_bytes(), url=source.url)
    if "error" in expected:
        with pytest.raises(ParseError) as caught:
            parse_json_api(fetched, source, SHANGHAI)
        assert type(caught.value).__name__ == expected["error"]
        assert str(caught.value).startswith("parse: ")
        return
    parsed = parse_json_api(fetched, source, SHANGHAI)
    assert [_as_dict(item) for item in parsed.items] == expected["items"]
    assert list(parsed.warnings) == expected.get("warnings", [])


def test_every_case_has_its_expected_twin() -> None:
    assert CASES, "tests/data/eastmoney holds no cases"
    for case in CASES:
        assert case.with_name(case.stem + ".expected.json").exists(), case.name


def test_naive_times_are_read_in_the_source_timezone() -> None:
    body = b'{"record": [{"infoCode": "NW202201242257831752", "datetime": "2022-01-24 00:48:09"}]}'
    tokyo = parse_json_api(_fetched(body), PRESET, ZoneInfo("Asia/Tokyo")).items[0].published
    shanghai = parse_json_api(_fetched(body), PRESET, SHANGHAI).items[0].published
    assert tokyo == datetime(2022, 1, 23, 15, 48, 9, tzinfo=UTC)
    assert shanghai == datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)


def test_chinese_and_relative_times_use_the_fetch_time_as_now() -> None:
    body = json.dumps({"record": [
        {"infoCode": "NW1", "datetime": "2022年01月24日 00:48"},
        {"infoCode": "NW2", "datetime": "5分钟前"},
        {"infoCode": "NW3", "datetime": "不是日期"},
    ]}, ensure_ascii=False).encode()
    published = [item.published for item in parse_json_api(_fetched(body), PRESET, SHANGHAI).items]
    assert published == [
        datetime(2022, 1, 23, 16, 48, tzinfo=UTC),
        datetime(2026, 11, 24, 5, 55, tzinfo=UTC),
        None,
    ]


def test_gbk_list_declared_in_the_content_type_is_decoded() -> None:
    body = json.dumps({"record": [{"infoCode": "NW1", "title": "南通日报讯", "medianame": "南通日报"}]},
                      ensure_ascii=False).encode("gbk")
    item = parse_json_api(_fetched(body, content_type="application/json; charset=GBK"), PRESET, SHANGHAI).items[0]
    assert (item.title, item.medium) == ("南通日报讯", "南通日报")


def test_json_and_html_kinds_are_registered_with_the_parse_dispatcher() -> None:
    assert PARSERS["json"] is parse_json_api
    assert PARSERS["html"].__name__ == "parse_html_list"


def test_preset_detail_url_is_the_legacy_endpoint_with_the_record_id() -> None:
    raw = RawItem(explicit_id="NW202201242257831752")
    assert detail_url_for(PRESET, raw) == EASTMONEY_DETAIL_URL.replace("{id}", "NW202201242257831752")
    assert detail_url_for(PRESET, raw) == (
        "http://choicewzp1.eastmoney.com/NewsData/GetNewsText.do?id=NW202201242257831752"
    )


def test_source_detail_url_overrides_the_preset_and_quotes_the_id() -> None:
    source = PRESET.model_copy(update={"detail_url": "http://127.0.0.1:9/detail?id={id}&cid=1"})
    assert detail_url_for(source, RawItem(explicit_id="A B/1")) == "http://127.0.0.1:9/detail?id=A%20B%2F1&cid=1"


def test_record_without_id_or_source_without_detail_url_has_no_detail_url() -> None:
    generic = SourceConfig(name="g", kind="json", url="http://127.0.0.1/api", items_path="items",
                           fields=JsonFields(id="id"), categories="auto")
    assert detail_url_for(PRESET, RawItem(title="no id")) is None
    assert detail_url_for(generic, RawItem(explicit_id="1")) is None


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("text_field_medium_news", "<p>南通日报讯 中天科技全面启动绿色低碳制造行动。</p><p class=\"em_media\">（文章来源：南通日报）</p>"),
        ("content_field_rolling_news", "<p>数据显示，截至目前，北向资金净流入达80亿元。</p>"),
        ("empty_body", None),
    ],
)
def test_detail_body_is_read_from_text_or_content(case: str, expected: str | None) -> None:
    body = (CASES_DIR / "detail" / f"{case}.json").read_bytes()
    assert read_detail_body(_fetched(body), PRESET) == expected


def test_detail_field_set_by_the_source_is_a_dotted_path() -> None:
    source = PRESET.model_copy(update={"detail_field": "data.article.html"})
    body = b'{"data": {"article": {"html": "<p>x</p>"}}, "text": "<p>not this</p>"}'
    assert read_detail_body(_fetched(body), source) == "<p>x</p>"


def test_detail_error_page_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="not JSON"):
        read_detail_body(_fetched(b"<html><body>404</body></html>", content_type="text/html"), PRESET)


# --- linear time over hostile bodies (issue 10): 100 KB that made the former regexes backtrack --------

#: generous: the inputs take milliseconds now; the regexes they replaced took hours (the JSONP wrapper
#: regex was cubic in a run of whitespace: 2,000 spaces took 35 s)
LINEAR_BOUND_SECONDS = 1.0


@pytest.mark.parametrize(
    "body",
    [b"callback(" + b" " * 100_000 + b"x", b"var data = " + b" " * 100_000 + b";x", b"f" * 100_000 + b"(",
     b" " * 100_000],
    ids=["call-then-spaces", "assignment-then-spaces", "long-callback-name", "only-spaces"],
)
def test_a_jsonp_wrapper_over_a_100_kb_whitespace_run_is_refused_in_linear_time(body: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(ParseError, match="not JSON"):
        parse_json_api(_fetched(body), PRESET, SHANGHAI)
    assert time.monotonic() - started < LINEAR_BOUND_SECONDS


def test_jsonp_wrappers_are_still_unwrapped() -> None:
    for body in (b'cb({"records": []});', b'var x = {"records": []} ;\n', b'a.b ({"records": []})'):
        assert parse_json_api(_fetched(body), PRESET, SHANGHAI).items == ()


@pytest.mark.parametrize(
    ("body", "message"),
    [(b'{"data": {"list": [{"n": ' + b"9" * 5000 + b"}]}}", "Exceeds the limit"),
     (b"[" * 10_000 + b"]" * 10_000, "nested too deeply")],
    ids=["5000-digit-integer", "10000-deep-nesting"],
)
def test_json_beyond_what_python_reads_is_a_parse_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_json_api(_fetched(body), PRESET, SHANGHAI)


def test_a_detail_body_beyond_what_python_reads_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="nested too deeply"):
        read_detail_body(_fetched(b'{"data": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"), PRESET)
