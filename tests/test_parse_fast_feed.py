"""parse/fast_feed.py against feedparser: wherever the fast path accepts a document, the ParsedFeeds are identical.

The differential runs every document of feedparser's own test corpus (../shared), feeds built from
the legacy posts, and a small benchmark corpus from ../shared/bench/gen_corpus.py, through
parse_feed twice (fast path on, then feedparser only) and lists every field that differs.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import ParseError
from aggregator.models import ParsedFeed
from aggregator.parse.fast_feed import read_feed
from aggregator.parse.feed import parse_feed
from tests.conftest import shared_path
from tests.corpus_feeds import atom, read_post, rss
from tests.test_parse_feed import _HEADER_RE, SHANGHAI, fetch

#: RawItem fields compared (every one); of ParsedFeed, ttl_minutes and warnings besides the items
ITEM_FIELDS = tuple(f.name for f in dataclasses.fields(__import__("aggregator.models").models.RawItem))


def differences(fast: ParsedFeed, slow: ParsedFeed) -> list[str]:
    """Every field where the fast path's ParsedFeed differs from feedparser's, as "field: fast != slow"."""
    found = [f"{name}: {getattr(fast, name)!r} != {getattr(slow, name)!r}"
             for name in ("ttl_minutes", "warnings")
             if getattr(fast, name) != getattr(slow, name)]
    if len(fast.items) != len(slow.items):
        return [*found, f"items: {len(fast.items)} != {len(slow.items)}"]
    for index, (a, b) in enumerate(zip(fast.items, slow.items, strict=True)):
        found += [f"items[{index}].{name}: {getattr(a, name)!r:.200} != {getattr(b, name)!r:.200}"
                  for name in ITEM_FIELDS if getattr(a, name) != getattr(b, name)]
    return found


def compare(name: str, body: bytes, content_type: str | None, taken: dict[str, list[str]],
            differing: dict[str, list[str]]) -> None:
    fetched, source = fetch(body, content_type)
    try:
        slow = parse_feed(fetched, source, SHANGHAI, fast_path=False)
    except ParseError:
        slow = None
    try:
        fast = parse_feed(fetched, source, SHANGHAI)
    except ParseError:
        fast = None
    accepted = _accepted(fetched.body, content_type)
    taken["fast" if accepted else "feedparser"].append(name)
    if fast is None or slow is None:
        if (fast is None) != (slow is None):
            differing[name] = [f"ParseError on one path only (fast path: {fast is None}, feedparser: {slow is None})"]
        return
    found = differences(fast, slow)
    if found:
        differing[name] = found


def _accepted(body: bytes, content_type: str | None) -> bool:
    from aggregator.parse.charset import CharsetError, decode_document
    from aggregator.parse.xml_safety import strip_prolog

    try:
        text = strip_prolog(decode_document(body, content_type, None).text).text
    except CharsetError:
        return False
    return bool(text.strip()) and read_feed(text) is not None


def feedparser_corpus(directory: Path) -> Iterator[tuple[str, bytes, str | None]]:
    for path in sorted(p for p in directory.rglob("*") if p.suffix in (".xml", ".json")):
        body = path.read_bytes()
        header = _HEADER_RE.search(body)
        yield path.relative_to(directory).as_posix(), body, header.group(1).decode("ascii", "replace") if header else None


def legacy_feeds(directory: Path) -> Iterator[tuple[str, bytes, str | None]]:
    posts = []
    for path in sorted(directory.glob("_posts__*.md")):
        try:
            posts.append(read_post(path))
        except (AssertionError, KeyError, ValueError):  # the few posts whose front matter the fixture builder skips
            continue
    assert len(posts) >= 10
    yield "legacy-posts.rss", rss("南通日报", posts), "application/rss+xml"
    yield "legacy-posts-gb18030.rss", rss("南通日报", posts, encoding="gb18030"), None
    yield "legacy-posts.atom", atom("南通日报", posts), "application/atom+xml"


def bench_feeds(tmp: Path) -> Iterator[tuple[str, bytes, str | None]]:
    script = shared_path("bench", "gen_corpus.py")
    subprocess.run([sys.executable, str(script), "--out", str(tmp), "--feeds", "24", "--entries", "8", "--seed", "3"],
                   check=True, capture_output=True)
    for path in sorted((tmp / "feeds").glob("*.xml"), key=lambda p: int(p.stem)):
        yield f"bench/{path.name}", path.read_bytes(), None


@pytest.fixture(scope="module")
def differential(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[str]]]:
    taken: dict[str, list[str]] = {"fast": [], "feedparser": []}
    differing: dict[str, list[str]] = {}
    corpora = {
        "feedparser-tests": feedparser_corpus(shared_path("corpus", "feedparser-tests")),
        "legacy-posts": legacy_feeds(shared_path("corpus", "legacy-posts")),
        "bench": bench_feeds(tmp_path_factory.mktemp("bench-corpus")),
    }
    by_corpus: dict[str, dict[str, list[str]]] = {}
    for corpus, documents in corpora.items():
        corpus_taken: dict[str, list[str]] = {"fast": [], "feedparser": []}
        for name, body, content_type in documents:
            compare(f"{corpus}:{name}", body, content_type, corpus_taken, differing)
        by_corpus[corpus] = corpus_taken
        for path, names in corpus_taken.items():
            taken[path] += names
    return {"taken": taken, "differing": differing, **{f"{c}:{p}": n for c, t in by_corpus.items() for p, n in t.items()}}


def test_fast_path_and_feedparser_agree_on_every_field_wherever_the_fast_path_accepts(
    differential: dict[str, Any],
) -> None:
    report = "\n".join(f"{name}:\n  " + "\n  ".join(found) for name, found in sorted(differential["differing"].items()))
    counts = {key: len(value) for key, value in differential.items() if ":" in key}
    print(f"documents per path: {counts}")
    assert differential["differing"] == {}, report


def test_fast_path_takes_every_legacy_and_benchmark_feed(differential: dict[str, Any]) -> None:
    assert differential["legacy-posts:feedparser"] == []
    assert differential["bench:feedparser"] == []
    assert len(differential["bench:fast"]) == 24


def test_fast_path_takes_the_common_shapes_of_feedparsers_corpus(differential: dict[str, Any]) -> None:
    fast = set(differential["feedparser-tests:fast"])
    # one plain document of each format the fast path claims
    assert "feedparser-tests:wellformed/rss/item_description.xml" in fast
    assert "feedparser-tests:wellformed/atom10/entry_content_escaped_markup.xml" in fast
    assert "feedparser-tests:wellformed/rdf/rdf_item_rdf_about.xml" in fast
    assert "feedparser-tests:wellformed/base/entry_content_xml_base.xml" not in fast  # Atom 0.3 is feedparser's
    assert "feedparser-tests:wellformed/rdf/rss090_item_title.xml" not in fast  # so is RSS 0.90
    assert len(fast) > 600


def test_documents_that_are_not_well_formed_go_to_feedparser() -> None:
    assert read_feed("<rss version='2.0'><channel><title>x</title>") is None
    assert read_feed("<rss version='2.0'><channel><item><title>&nbsp;</title></item></channel></rss>") is None


def test_constructs_outside_the_vocabulary_are_declined_not_guessed() -> None:
    media = ('<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><item>'
             '<media:title>x</media:title></item></channel></rss>')
    xhtml = ('<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml">'
             '<div xmlns="http://www.w3.org/1999/xhtml">x</div></content></entry></feed>')
    assert read_feed(media) is None
    assert read_feed(xhtml) is None
    plain = '<rss version="2.0"><channel><item><title>t</title><guid>g</guid></item></channel></rss>'
    accepted = read_feed(plain)
    assert accepted is not None and accepted.entries == [{"title": "t", "id": "g", "guidislink": True, "link": "g"}]
