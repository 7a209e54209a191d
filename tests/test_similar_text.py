"""Tests for aggregator.similar.text: what is left of an item once reprint differences are normalised away."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.similar.text import _DECIMAL_POINT_RE, numbers_in, story_text

BODY = "<p>农业农村部副部长邓小刚8日表示，近日国务院印发规划。规划提出，到2025年，农业基础更加稳固。</p>"


@pytest.mark.parametrize(
    "html",
    [
        BODY + "<p>（文章来源：南通日报）</p>",
        BODY.replace("。</p>", "。（文章来源：泉州晚报）</p>"),
        BODY + "<p>责任编辑：张伟</p>",
        BODY.replace("。</p>", "。责任编辑：王芳</p>"),
        "<p>本报讯（记者 李明 通讯员 张伟）</p>" + BODY,
        "<p>来源：新华社</p>" + BODY + "<p>【编辑：赵磊】</p>",
        BODY.replace("，", ",").replace("。", ".").replace("<p>", "<p>  "),
        BODY.replace("2025", "２０２５"),
        BODY + "<p>郑重声明：东方财富发布此内容旨在传播更多信息，与本站立场无关。</p>",
    ],
    ids=["source-line", "source-line-inline", "editor-line", "editor-trailing", "reporter-byline",
         "source-and-editor-lines", "half-width-punctuation-and-spaces", "full-width-digits", "disclaimer"],
)
def test_reprint_differences_vanish_from_the_story_text(html: str) -> None:
    assert story_text("标题", html) == story_text("标题", BODY)


def test_story_text_keeps_letters_digits_and_decimal_numbers_only() -> None:
    text = story_text("沪指涨0.52%", "<p>成交额 1.2 万亿元。End.</p>")
    assert text == "沪指涨0d52成交额1d2万亿元end"
    assert numbers_in(text) == {"0d52", "1d2"}


def test_a_long_line_that_mentions_a_reporter_is_text_not_a_byline() -> None:
    line = "据记者了解，今年以来全市新开工重点项目一百二十个，完成投资超过去年全年水平，带动就业岗位明显增加。"
    assert "据记者了解" in story_text("", f"<p>{line}</p>")


#: the pattern as first written, before its "." was put first for speed (issue 14)
FIRST_DECIMAL_POINT_RE = re.compile(r"(?<=\d)\.(?=\d)")


@given(st.text(st.sampled_from("0１9.。._ a汉Ａ,，\n😀")))
def test_the_faster_decimal_point_pattern_changes_no_text(text: str) -> None:
    assert _DECIMAL_POINT_RE.sub("d", text) == FIRST_DECIMAL_POINT_RE.sub("d", text)
