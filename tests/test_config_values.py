"""Single-value checks of feeds.toml: what passes unchanged and what is refused with which message."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aggregator.config.values import (
    check_cron,
    check_css_selector,
    check_encoding,
    check_http_url,
    check_listen,
    check_regex,
    check_replacement,
    check_store,
    check_timezone,
    check_url_template,
)

Check = Callable[[str], str]

ACCEPTED: list[tuple[Check, str]] = [
    (check_http_url, "https://www.chinanews.com.cn/rss/scroll-news.xml"),
    (check_http_url, "http://43.240.125.15:1818/information/newmarket/web/webapi?marketType=37&count=100"),
    (check_http_url, "http://[::1]:8080/feed"),
    (check_url_template, "http://choicewzp1.eastmoney.com/NewsData/GetNewsText.do?id={id}"),
    (check_url_template, "https://example.com/no-placeholder"),
    (check_timezone, "Asia/Shanghai"),
    (check_timezone, "UTC"),
    (check_encoding, "gb18030"),
    (check_encoding, "GBK"),
    (check_cron, "*/5 * * * *"),
    (check_cron, "0 8 * * mon-fri"),
    (check_cron, "0 0 29 feb *"),
    (check_listen, "127.0.0.1:8080"),
    (check_listen, "0.0.0.0:80"),
    (check_listen, "[::]:8080"),
    (check_listen, "localhost:65535"),
    (check_css_selector, "div.EmImageRemark > img"),
    (check_css_selector, "p[style*='display:none']"),
    (check_css_selector, "input:checked"),
    (check_css_selector, "*|span[*|lang]"),
    (check_regex, r"<!--\s*EM_StockImg_Start\s*-->.*?<!--\s*EM_StockImg_End\s*-->"),
    (check_store, "store/aggregator.db"),
    (check_store, "postgresql://postgres@127.0.0.1:5432/test"),
]

REFUSED: list[tuple[Check, str, str]] = [
    (check_http_url, "www.example.com/feed", "must be an http or https URL with a host"),
    (check_http_url, "https://exa mple.com/", "must be an http or https URL with a host"),
    (check_http_url, "http://example.com:0x50/", "must be an http or https URL, not"),
    (check_url_template, "http://example.com/{id}/{page}", "must use only the placeholder {id}, not {page}"),
    (check_url_template, "{id}", "must be an http or https URL with a host (and may contain {id})"),
    (check_timezone, "CST", "must be an IANA timezone"),
    (check_timezone, "", "must be an IANA timezone"),
    (check_encoding, "utf-9", "must be a character encoding Python knows"),
    (check_cron, "@hourly", "must be a cron expression of 5 fields"),
    (check_cron, "0 8 * * 0", "must name weekdays"),
    (check_cron, "*/0 * * * *", "must be a valid cron expression"),
    (check_cron, "0 0 30 2 *", "must be a cron expression that fires (this one never does)"),
    (check_cron, "0 0 31 feb mon", "must be a cron expression that fires (this one never does)"),
    (check_listen, "127.0.0.1:0", "must be HOST:PORT"),
    (check_listen, "127.0.0.1:70000", "must be HOST:PORT"),
    (check_listen, ":8080", "must be HOST:PORT"),
    (check_listen, "::1:8080", "must be HOST:PORT"),
    (check_css_selector, "div >", "must be a valid CSS selector"),
    (check_css_selector, "a::attr(href)", "must be a valid CSS selector"),
    (check_css_selector, "svg|a", "namespace prefix 'svg' is not supported"),
    (check_css_selector, "a[xlink|href]", "namespace prefix 'xlink' is not supported"),
    (check_css_selector, "div[", "must be a valid CSS selector"),
    (check_css_selector, "::nonsense(", "must be a valid CSS selector"),
    (check_css_selector, "a:no-such-pseudo-class", "must be a valid CSS selector"),
    (check_regex, "(unclosed", "must be a valid regular expression"),
    (check_regex, "a{2,1}", "must be a valid regular expression"),
    (check_regex, "", "must be a non-empty regular expression"),
    (check_store, "", "must be a SQLite file path"),
    (check_store, "mysql://localhost/db", "must be a SQLite file path or a URL starting with"),
]


@pytest.mark.parametrize(("check", "value"), ACCEPTED,
                         ids=[f"{check.__name__}:{value}" for check, value in ACCEPTED])
def test_valid_value_passes_unchanged(check: Check, value: str) -> None:
    assert check(value) == value


@pytest.mark.parametrize(("check", "value", "message"), REFUSED,
                         ids=[f"{check.__name__}:{value}" for check, value, _ in REFUSED])
def test_invalid_value_is_refused_with_a_message_naming_it(check: Check, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^must ") as caught:
        check(value)
    assert message in str(caught.value)
    assert repr(value) in str(caught.value) or value == ""


@pytest.mark.parametrize(("pattern", "template"), [
    ("<b>(.*?)</b>", r"<strong>\1</strong>"),
    (r"(?P<day>\d+)日", r"\g<day>"),
    ("　　", ""),
    (r"\\", r"\\"),  # an escaped backslash is a literal one
])
def test_valid_replacement_template_passes_unchanged(pattern: str, template: str) -> None:
    assert check_replacement(template, pattern) == template


@pytest.mark.parametrize(("pattern", "template", "error"), [
    ("<b>(.*?)</b>", r"\2", "invalid group reference 2"),
    ("　　", "\\", "bad escape (end of pattern)"),
    (r"(?P<day>\d+)日", r"\g<date>", "unknown group name 'date'"),
])
def test_replacement_template_the_pattern_cannot_fill_is_refused(pattern: str, template: str, error: str) -> None:
    with pytest.raises(ValueError, match=r"^must be a valid replacement template for the pattern: ") as caught:
        check_replacement(template, pattern)
    assert error in str(caught.value)
