"""clean/text.py: clean_text for titles, visible_text for what a reader sees."""

from __future__ import annotations

import time

import pytest

from aggregator.clean import clean_text, visible_text


@pytest.mark.parametrize(("text", "expected"), [
    ("聚焦可持续发展 中天科技全面启动绿色低碳制造行动", "聚焦可持续发展 中天科技全面启动绿色低碳制造行动"),
    ("  龙虎榜：6.54亿抢筹长安汽车\n\t外资净买3股  ", "龙虎榜：6.54亿抢筹长安汽车 外资净买3股"),
    ("<b>昇兴股份</b>：2021年净利同比预增1117%", "昇兴股份：2021年净利同比预增1117%"),
    ("AT&amp;T &lt;b&gt; &#8220;引号&#8221; &nbsp;x", "AT&T <b> “引号” x"),
    ("&amp;lt;double&amp;gt;", "&lt;double&gt;"),
    ("a < b and c > d", "a < b and c > d"),
    ("《<<深圳特区报>>》", "《<<深圳特区报>>》"),
    ("标题<script>alert(1)</script><!-- c -->尾", "标题尾"),
    ("第一行<br/>第二行<p>第三段</p>", "第一行 第二行 第三段"),
    ("控制\x00字符\x07与\ufeff零宽\u200b空格", "控制字符与零宽空格"),
    ("孤立\ud800代理", "孤立\ufffd代理"),
    ("", ""),
], ids=["plain", "whitespace", "tags", "entities", "decoded-once", "comparison", "book-title-marks",
        "script-and-comment", "line-breaks", "controls", "surrogate", "empty"])
def test_clean_text_gives_a_plain_single_line(text: str, expected: str) -> None:
    assert clean_text(text) == expected


def test_visible_text_puts_blocks_on_their_own_lines_and_collapses_spaces() -> None:
    html = "<p>第一段，  强监管。</p>\n <p>第二段<br/>换行 </p><center><img src=x></center>尾  巴"
    assert visible_text(html) == "第一段， 强监管。\n第二段\n换行\n尾 巴"


def test_visible_text_leaves_out_what_a_reader_does_not_see() -> None:
    html = ('<p style="display:none;height:1px;overflow:hidden;">隐藏</p><!-- EM_StockImg_Start -->'
            "<script>var a='脚本';</script><style>p{}</style><p hidden>也隐藏</p><p>可见</p>")
    assert visible_text(html) == "可见"


def test_visible_text_keeps_non_collapsible_spaces() -> None:
    # CSS collapses only ASCII white space: the ideographic indent and NBSP are seen
    assert visible_text("<p>　　缩进\u00a0段落</p>") == "　　缩进\u00a0段落"


def test_visible_text_of_deeply_nested_markup_still_has_its_words() -> None:
    assert visible_text("<div>" * 3000 + "深处" + "</div>" * 3000) == "深处"


@pytest.mark.parametrize(
    "text", ["<p" * 50_000, "<br" + " " * 100_000, "<!--" * 25_000, "<script" * 14_000, "<a" * 50_000],
    ids=["paragraph-openings", "break-then-spaces", "comment-openings", "script-openings", "tag-openings"],
)
def test_a_100_kb_title_of_unclosed_tags_is_cleaned_in_linear_time(text: str) -> None:
    started = time.monotonic()
    clean_text(text)
    # generous: the former `</?p\b[^>]*>` rescanned the rest of the text from every "<p" (quadratic)
    assert time.monotonic() - started < 1.0
