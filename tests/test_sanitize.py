"""clean/sanitize.py: the allowlist tables and the nh3 final pass on its own."""

from __future__ import annotations

import pytest

from aggregator.clean.sanitize import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    DROPPED_WITH_CONTENT,
    URL_ATTRIBUTES,
    sanitize_html,
)


def test_allowlist_has_no_attribute_that_can_carry_style_script_or_tracking() -> None:
    names = set().union(*ALLOWED_ATTRIBUTES.values())
    assert not {name for name in names if name.startswith(("on", "data-"))}
    assert not names & {"style", "class", "id", "srcset", "target", "rel", "background", "formaction"}
    assert set(ALLOWED_ATTRIBUTES) <= ALLOWED_TAGS


def test_no_tag_is_both_allowed_and_dropped_with_content() -> None:
    assert not ALLOWED_TAGS & DROPPED_WITH_CONTENT
    assert not ALLOWED_TAGS & {"script", "style", "iframe", "svg", "math", "object", "embed", "form", "span"}


@pytest.mark.parametrize(("html", "expected"), [
    ('<p class="x" style="color:red" id="a" data-code="1" onclick="go()">t</p>', "<p>t</p>"),
    ('<a href="https://a.example/" target="_blank" title="t">x</a>', '<a href="https://a.example/" title="t">x</a>'),
    ('<a href="javascript:alert(1)">x</a>', "<a>x</a>"),
    ('<img src="https://a.example/i.png" alt="a" width="10" height="20" border="0">',
     '<img src="https://a.example/i.png" alt="a" width="10" height="20">'),
    ("<script>alert(1)</script><style>p{}</style>after", "after"),
    ("<svg><g/onload=alert(1)></svg>after", "after"),
    ("<!-- EM_StockImg_Start -->x<!-- EM_StockImg_End -->", "x"),
    ('<td colspan="2" rowspan="3" bgcolor="red">c</td>', 'c'),
    ('<table><tr><td colspan="2" bgcolor="red">c</td></tr></table>',
     '<table><tbody><tr><td colspan="2">c</td></tr></tbody></table>'),
    ("<span>unwrapped</span><font color=red>too</font>", "unwrappedtoo"),
    ("<ruby>汉<rp>(</rp><rt>hàn</rt><rp>)</rp></ruby>", "<ruby>汉<rp>(</rp><rt>hàn</rt><rp>)</rp></ruby>"),
], ids=["presentation-attributes", "link-target", "script-link", "image", "script-and-style", "svg",
        "comments", "cell-outside-table", "table-cell", "span-and-font", "ruby"])
def test_sanitize_html_keeps_only_the_allowlist(html: str, expected: str) -> None:
    assert sanitize_html(html) == expected


def test_url_attributes_are_the_allowed_ones_holding_urls() -> None:
    assert URL_ATTRIBUTES == {"href", "src", "cite"}
    holders = {tag for tag, names in ALLOWED_ATTRIBUTES.items() if names & URL_ATTRIBUTES}
    assert holders == {"a", "img", "blockquote", "q", "del", "ins"}
