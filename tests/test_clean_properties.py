"""Property tests of clean_html (hypothesis): allowlisted output with safe URLs, idempotent, never raises."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.clean import clean_html
from aggregator.clean.sanitize import ALLOWED_TAGS
from aggregator.config.load import CleanRules
from tests.test_clean_xss import assert_cannot_run_script

ITEM_URL = "http://finance.eastmoney.com/news/1354,202201212257099936.html"

_TAGS = sorted(ALLOWED_TAGS) + [
    "span", "font", "script", "style", "iframe", "svg", "math", "noscript", "textarea", "xmp", "plaintext",
    "title", "template", "form", "input", "select", "option", "object", "body", "html", "head", "o:p",
    "section", "article", "frameset", "noembed", "noframes", "listing", "image", "mglyph", "mtext",
]
_ATTRIBUTES = ["href", "src", "style", "class", "id", "data-code", "onclick", "onerror", "hidden", "width",
               "height", "alt", "title", "cite", "colspan", "orginial_src", "data-src", "web", "xlink:href",
               '{"', "xmlns", "xml:lang", "{http://x}a"]
_VALUES = st.sampled_from([
    "", "x", "1", "0", "578", "display:none", "visibility:hidden", "height:1px;overflow:hidden",
    "keytip", "EmImageRemark", "em_stock_key_common", "quote_0.002752", "stock_1.600160",
    "javascript:alert(1)", "jav&#x09;ascript:alert(1)", "data:image/gif;base64,R0lGOD",
    "http://quote.eastmoney.com/unify/r/1.600160", "https://webquoteklinepic.eastmoney.com/GetPic.aspx?nid=1",
    "https://dfscdn.dfcfw.com/download/D1.jpg?utm_source=x", "/relative/a.html", "//cdn.example.cn/a.png",
    "K图 600160_0", "\"><script>alert(1)</script>", "&amp;&lt;", "中文",
]) | st.text(max_size=12)
_TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list("<>&;\"'=/ \n\u3000\u00a0")),
                max_size=20)


@st.composite
def _start_tag(draw: st.DrawFn) -> str:
    tag = draw(st.sampled_from(_TAGS))
    attributes = draw(st.lists(st.tuples(st.sampled_from(_ATTRIBUTES), _VALUES), max_size=3))
    rendered = "".join(f' {name}="{value}"' for name, value in attributes)
    return f"<{tag}{rendered}{draw(st.sampled_from(['', '/']))}>"


_TOKENS = st.one_of(
    _TEXT,
    _start_tag(),
    st.sampled_from(_TAGS).map(lambda tag: f"</{tag}>"),
    st.sampled_from(["<!-- EM_StockImg_Start -->", "<!--EM_StockImg_End-->", "<!--IMG#0-->", "<!-- x",
                     "-->", "<br>", "<br/>", "&nbsp;", "&#0;", "&bogus;", "</p>", "<p>", "<![CDATA[", "]]>",
                     "&#x09;", "\r\n", "<", "&"]),
)
HTML_ISH = st.lists(_TOKENS, max_size=30).map("".join)
ANY_TEXT = st.text(max_size=200)

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(HTML_ISH)
def test_output_holds_only_allowlisted_tags_attributes_and_url_schemes(markup: str) -> None:
    assert_cannot_run_script(clean_html(markup, ITEM_URL), markup)


@_SETTINGS
@given(HTML_ISH)
def test_cleaning_is_idempotent(markup: str) -> None:
    once = clean_html(markup, ITEM_URL)
    assert clean_html(once, ITEM_URL) == once


@_SETTINGS
@given(HTML_ISH, st.sampled_from(["default", "eastmoney", "generic", "none"]))
def test_cleaning_is_idempotent_under_every_preset(markup: str, preset: str) -> None:
    rules = CleanRules(preset=preset)  # type: ignore[arg-type]
    once = clean_html(markup, None, rules)
    assert clean_html(once, None, rules) == once


@_SETTINGS
@given(ANY_TEXT, st.one_of(st.none(), st.text(max_size=30), st.just(ITEM_URL)))
def test_clean_html_never_raises_on_any_string(text: str, base_url: str | None) -> None:
    # a base that is not a web URL leaves relative URLs relative
    assert_cannot_run_script(clean_html(text, base_url), text, allow_relative=True)
