"""clean_html over every post of ../shared/corpus/legacy-posts: widgets go, every sentence stays."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree
from lxml import html as lxml_html

from aggregator.clean import clean_html, visible_text
from tests.conftest import SHARED_DIR

CORPUS_DIR = SHARED_DIR / "corpus" / "legacy-posts"
# collected when ../shared is there; the legacy_posts_dir fixture skips (or fails in CI) when it is not
POSTS = sorted(path for path in CORPUS_DIR.glob("*.md") if path.name != "README.md") if CORPUS_DIR.exists() else []
# Markdown around the article HTML, not part of it (legacy-posts/README.md "Front matter, source-link
# and back-link variants"): the `<http…>` source link (or empty `<>`) and the `[返回…]` back-links
_SOURCE_LINK_RE = re.compile(r"^<(https?://[^>]*)?>$")
_BACK_LINK_RE = re.compile(r"^\[返回")
_QUOTE_HOSTS = ("quote.eastmoney.com", "data.eastmoney.com")
_CHART_HOSTS = ("webquoteklinepic.eastmoney.com", "webquotepic.eastmoney.com")


def _split_post(text: str) -> tuple[str, str | None]:
    """(article body, source link) of one post file."""
    body = text.lstrip("\n").split("---", 2)[2]
    source_link = None
    lines = []
    for line in body.split("\n"):
        stripped = line.strip()
        if match := _SOURCE_LINK_RE.match(stripped):
            source_link = match.group(1)
        elif not _BACK_LINK_RE.match(stripped):
            lines.append(line)
    return "\n".join(lines), source_link


def _cleaned(path: Path) -> tuple[str, str]:
    body, source_link = _split_post(path.read_text(encoding="utf-8"))
    return body, clean_html(body, source_link)


def test_corpus_is_the_documented_sample(legacy_posts_dir: Path) -> None:
    assert len(POSTS) == 60
    bodies = [_split_post(path.read_text(encoding="utf-8"))[0] for path in POSTS]
    # MANIFEST.tsv counts: the patterns below are really exercised
    assert sum("EM_StockImg_Start" in body for body in bodies) == 12
    assert sum("display:none" in body for body in bodies) == 10
    assert sum(bool(re.search("keytip|em_stock_key_common|infokey", body)) for body in bodies) == 7


@pytest.mark.parametrize("path", POSTS, ids=[path.name for path in POSTS])
def test_post_keeps_every_visible_sentence(path: Path, legacy_posts_dir: Path) -> None:
    body, cleaned = _cleaned(path)
    assert visible_text(cleaned) == visible_text(body)


@pytest.mark.parametrize("path", POSTS, ids=[path.name for path in POSTS])
def test_post_loses_every_widget_quote_link_hidden_element_and_attribute(path: Path,
                                                                        legacy_posts_dir: Path) -> None:
    _, cleaned = _cleaned(path)
    assert "stockimg" not in cleaned.lower()
    if not cleaned:
        return
    root = lxml_html.fragment_fromstring(cleaned, create_parent="div")
    assert not root.xpath("//comment()")
    for element in root.iter(etree.Element):
        assert element.tag not in {"script", "style", "span", "iframe"}, element.tag
        for name in element.attrib:
            assert name not in {"style", "class", "id", "hidden"} and not name.startswith(("data-", "on")), name
        if element.tag in {"p", "div", "center"}:
            # what hidden spacers and removed widgets leave behind: a block with nothing to see
            assert element.text_content().strip() or element.xpath(".//img"), etree.tostring(element)
    for link in root.iter("a"):
        assert not any(host in link.get("href", "") for host in _QUOTE_HOSTS), link.get("href")
    for image in root.iter("img"):
        assert not any(host in image.get("src", "") for host in _CHART_HOSTS), image.get("src")
        assert image.get("src", "").startswith("https://dfscdn.dfcfw.com/download/")


def test_content_images_of_the_corpus_are_all_kept(legacy_posts_dir: Path) -> None:
    kept = in_source = 0
    for path in POSTS:
        body, cleaned = _cleaned(path)
        kept += cleaned.count("<img ")
        # each content image names dfscdn once in src, and once more in orginial_src when it has one
        in_source += body.count("dfscdn.dfcfw.com/download/") - body.count("orginial_src=")
    assert kept == in_source > 0
