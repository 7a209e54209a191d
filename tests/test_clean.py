"""aggregator.clean: golden pairs (tests/data/clean/<case>.html → <case>.clean.html) and the API contract."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aggregator.clean import clean_html, compile_rules, visible_text
from aggregator.config.load import CleanRules, Replacement
from tests.conftest import DATA_DIR, REPO_ROOT

GOLDEN_DIR = DATA_DIR / "clean"
#: every golden case is cleaned as if it came from this eastmoney article
ITEM_URL = "http://finance.eastmoney.com/news/1354,202201212257099936.html"
GOLDEN_CASES = sorted(path for path in GOLDEN_DIR.glob("*.html") if not path.name.endswith(".clean.html"))


def _read(path: Path) -> str:
    # bytes, not read_text(): some cases hold \r\n on purpose and text mode would translate it
    return path.read_bytes().decode("utf-8")


def test_golden_cases_come_in_pairs() -> None:
    assert len(GOLDEN_CASES) >= 30
    for case in GOLDEN_CASES:
        assert case.with_name(case.stem + ".clean.html").exists(), case.name


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[case.stem for case in GOLDEN_CASES])
def test_golden_case_is_cleaned_as_expected(case: Path) -> None:
    expected = _read(case.with_name(case.stem + ".clean.html")).removesuffix("\n")
    assert clean_html(_read(case), ITEM_URL) == expected


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[case.stem for case in GOLDEN_CASES])
def test_cleaning_a_golden_output_again_changes_nothing(case: Path) -> None:
    once = clean_html(_read(case), ITEM_URL)
    assert clean_html(once, ITEM_URL) == once


@pytest.mark.parametrize("markup", [
    "", " \n\t", "plain text", "<", "<<<>>>", "</p>", "<!--", "<![CDATA[x]]>", "<?php echo 1 ?>",
    "\x00\x01\x02", "\ud800 lone surrogate \udfff", "\ufffe\uffff", "&#xD800;&#0;&#x110000;",
    "<p>\r\r\n\x0c</p>", "<html><head><title>t</title></head><body onload=x>b</body></html>",
    "<div>" * 3000 + "deep" + "</div>" * 3000, "<b>" * 5000 + "deep",
    "<table><tr><td>" * 200, "<p>" + "x" * 200_000 + "</p>",
], ids=lambda markup: repr(markup[:30]))
def test_clean_html_never_raises_on_hostile_or_broken_input(markup: str) -> None:
    assert isinstance(clean_html(markup, ITEM_URL), str)


def test_text_after_a_stray_body_end_tag_is_kept() -> None:
    assert clean_html("<p>a</p></body></html><p>b</p>c", None) == "<p>a</p><p>b</p>c"


def test_markup_nested_beyond_the_parser_limit_keeps_its_words() -> None:
    out = clean_html("<div>" * 3000 + "最深处的文字 <script>x</script>" + "</div>" * 3000, None)
    assert out == "<p>最深处的文字</p>"


def test_relative_urls_stay_relative_without_an_item_url() -> None:
    out = clean_html('<p><a href="/a/1.html">x</a><img src="/i.png"></p>', None)
    assert out == '<p><a href="/a/1.html">x</a><img src="/i.png"></p>'


def test_own_remove_unwrap_and_replace_rules_are_applied() -> None:
    rules = CleanRules(
        remove=("div.ad", "p:last-child"),
        unwrap=("section.wrap",),
        replace=(Replacement(pattern=r"【[^】]*编辑[^】]*】", replacement=""),),
    )
    html = ('<section class="wrap"><p>正文【责任编辑：张三】</p><div class="ad"><p>广告</p></div>'
            '<p>分享到微信</p></section>')
    assert clean_html(html, None, rules) == "<p>正文</p>"


def test_preset_none_keeps_site_markup_but_still_sanitizes() -> None:
    html = ('<p style="display:none">隐藏</p><p><a class="keytip" href="http://quote.eastmoney.com/unify/r/1.600160">'
            '巨化股份</a><img src="x.gif" width="1" height="1" onerror="alert(1)"></p><script>alert(1)</script>')
    out = clean_html(html, "https://a.example/n/1.html", CleanRules(preset="none"))
    assert out == ('<p>隐藏</p><p><a href="http://quote.eastmoney.com/unify/r/1.600160">巨化股份</a>'
                   '<img src="https://a.example/n/x.gif" width="1" height="1"></p>')


def test_preset_generic_does_not_apply_eastmoney_rules() -> None:
    html = ('<p style="display:none">隐藏</p><p><a class="keytip" href="http://quote.eastmoney.com/unify/r/1.600160">'
            '巨化股份</a></p>')
    assert clean_html(html, None, CleanRules(preset="generic")) == (
        '<p><a href="http://quote.eastmoney.com/unify/r/1.600160">巨化股份</a></p>')
    assert clean_html(html, None, CleanRules(preset="eastmoney")) == "<p>隐藏</p><p>巨化股份</p>"


def test_replacement_templates_may_use_groups() -> None:
    rules = CleanRules(replace=(Replacement(pattern=r"【来源：([^】]*)】", replacement=r"（来源：\1）"),))
    assert clean_html("<p>正文【来源：南通日报】</p>", None, rules) == "<p>正文（来源：南通日报）</p>"


def test_rules_are_compiled_once_per_distinct_rules() -> None:
    assert compile_rules(CleanRules(remove=("div.x",))) is compile_rules(CleanRules(remove=("div.x",)))


def test_visible_text_of_the_seed_post_survives_cleaning(seed_post: Path) -> None:
    body = seed_post.read_text(encoding="utf-8").split("---", 2)[2].split("\n\n<http", 1)[0]
    cleaned = clean_html(body, "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202201242257831752")
    assert visible_text(cleaned) == visible_text(body)
    assert cleaned.startswith("<p>聚焦可持续发展")
    assert cleaned.endswith("<p>（文章来源：南通日报）</p>")


def test_clean_command_tries_a_sources_rules_on_a_file(tmp_path: Path) -> None:
    """`aggregator clean --source NAME FILE`: that source's preset and selectors, its URL as the base."""
    config = tmp_path / "feeds.toml"
    config.write_text('[categories.news]\ntitle = "News"\n\n[[sources]]\nname = "paper"\n'
                      'url = "https://paper.example.cn/rss.xml"\ncategories = ["news"]\n\n'
                      '[sources.clean]\npreset = "none"\nremove = ["div.share"]\n', encoding="utf-8")
    fragment = tmp_path / "item.html"
    fragment.write_text('<p style="display:none">隐藏</p><p><a href="/a/1.html">正文</a></p><div class="share">分享</div>',
                        encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-m", "aggregator", "clean", "--config", str(config),
                             "--source", "paper", str(fragment)],
                            capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 0, result.stderr
    # preset "none": the hidden paragraph stays (no site rules), the source's own selector still applies
    assert result.stdout == '<p>隐藏</p><p><a href="https://paper.example.cn/a/1.html">正文</a></p>\n'


# --- linear time over hostile bodies (issue 10) ------------------------------------------------------


@pytest.mark.parametrize(
    "html",
    ["</body" * 17_000, f'<img src="http://x/a.png" width="1{" " * 100_000}x">',
     f'<img src="http://x/a.png" style="width: 1{" " * 100_000}x">'],
    ids=["unclosed-body-end-tags", "pixel-width-then-spaces", "pixel-style-then-spaces"],
)
def test_a_100_kb_body_that_made_a_regex_backtrack_is_cleaned_in_linear_time(html: str) -> None:
    started = time.monotonic()
    clean_html(html, "http://x/", CleanRules())
    # generous: the former pixel-size regex took 4.6 s over 20,000 spaces (quadratic)
    assert time.monotonic() - started < 1.0
