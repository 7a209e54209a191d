"""Normalise an item to the text that makes it a story: no markup, source line, bylines, punctuation or spacing.

Pure. Reprints of one story differ in exactly these parts (issue 14): each paper appends its own
（文章来源：南通日报）, names its own editor and reporter, and eastmoney's copies keep full-width
punctuation where another site has half-width. Full-width letters and digits (Ａ, １) are folded
into ASCII, the part of NFKC that matters here (unicodedata.normalize was a third of the signing
time, so it is skipped: the patterns below take both widths of their brackets and colons); every
character that is not a letter or digit is then dropped.
"""

from __future__ import annotations

import html as html_lib
import re

#: full-width digits and letters → ASCII (U+FF10–FF19, FF21–FF3A, FF41–FF5A)
_FULL_WIDTH_ALNUM_RE = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
_FOLD_WIDTH = {code: code - 0xFEE0 for code in range(0xFF10, 0xFF5B)}
#: block elements end a line, so a byline in its own paragraph is a line of its own
_BLOCK_BREAK_RE = re.compile(r"<br\s*/?>|</?(?:p|div|h[1-6]|li|tr|blockquote|figcaption|figure|section)\b[^>]*>",
                             re.IGNORECASE)
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_TAG_RE = re.compile(r"</?[a-zA-Z][^<>]*>|<![^<>]*>|<\?[^<>]*>")

#: who wrote, edited, checked or photographed it: different in every reprint
BYLINE_WORDS = (
    "文章来源", "来源", "责任编辑", "责编", "编辑", "校对", "审核", "审校", "监制", "编审", "记者", "通讯员",
    "实习生", "摄影", "摄", "作者", "本报讯", "图/", "文/", "图片来源", "原标题",
)
_BYLINE_ALTERNATIVES = "|".join(re.escape(word) for word in sorted(BYLINE_WORDS, key=len, reverse=True))
#: a bracketed aside holding a byline word: （文章来源：南通日报）, (记者 张三 通讯员 李四), 【编辑：王五】
_BRACKETED_BYLINE_RE = re.compile(
    rf"[(\[【〔（][^()\[\]【】〔〕（）\n]{{0,60}}?(?:{_BYLINE_ALTERNATIVES})[^()\[\]【】〔〕（）\n]{{0,60}}[)\]】〕）]")
#: a short line that is only a byline: "责任编辑：张三", "本报记者 李四 摄", "来源：新华社"
_BYLINE_LINE_RE = re.compile(rf"^[^\n]{{0,12}}(?:{_BYLINE_ALTERNATIVES})[^\n]{{0,40}}$", re.MULTILINE)
#: a trailing byline run on the last text line: "…目标。责任编辑：张三"
_TRAILING_BYLINE_RE = re.compile(r"(?:责任编辑|责编|编辑|校对|审核)[:：][^\n]{0,30}$", re.MULTILINE)
#: eastmoney's boilerplate paragraphs (clean/rules.py removes the widgets; these are text)
BOILERPLATE_WORDS = ("郑重声明", "风险提示", "免责声明", "特别提示", "文章中的观点仅代表作者")
_BOILERPLATE_LINE_RE = re.compile(
    "^[^\n]*(?:" + "|".join(map(re.escape, BOILERPLATE_WORDS)) + ")[^\n]*$", re.MULTILINE)
#: a decimal point between digits survives the punctuation pass as "d" (0.52 → 0d52); lookarounds, not a
#: group: a replacement template with a group reference is expanded by Python code once per match. The
#: "." comes first so that the search jumps from one "." to the next (a leading lookbehind was tried at
#: every character: 5 times slower on the benchmark's items)
_DECIMAL_POINT_RE = re.compile(r"\.(?<=\d\.)(?=\d)")
#: everything but letters (Han included) and digits
_NOT_TEXT_RE = re.compile(r"[\W_]+")
#: numbers as a reader sees them, in the punctuation-free text: 0d52 (0.52), 1234
_NUMBER_RE = re.compile(r"\d+(?:d\d+)?")


def html_to_lines(html: str) -> str:
    """The text of a cleaned body, one line per block; fast (regex), as the body is already sanitised."""
    if "<" in html:
        html = _COMMENT_RE.sub("", html)
        html = _BLOCK_BREAK_RE.sub("\n", html)
        html = _TAG_RE.sub("", html)
    return html_lib.unescape(html) if "&" in html else html


def story_text(title: str, html: str) -> str:
    """Title and body reduced to lower-case letters and digits, bylines and source lines removed."""
    text = f"{title}\n{html_to_lines(html)}"
    if _FULL_WIDTH_ALNUM_RE.search(text):
        text = text.translate(_FOLD_WIDTH)
    if any(bracket in text for bracket in "([【〔（"):
        text = _BRACKETED_BYLINE_RE.sub("", text)
    text = _BYLINE_LINE_RE.sub("", text)
    if ":" in text or "：" in text:
        text = _TRAILING_BYLINE_RE.sub("", text)
    if any(word in text for word in BOILERPLATE_WORDS):
        text = _BOILERPLATE_LINE_RE.sub("", text)
    if "." in text:
        text = _DECIMAL_POINT_RE.sub("d", text)
    return _NOT_TEXT_RE.sub("", text).lower()


def numbers_in(text: str) -> frozenset[str]:
    """The distinct numbers of a story text: market wraps and announcement digests differ in these."""
    return frozenset(_NUMBER_RE.findall(text))
