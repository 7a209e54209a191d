"""items.py: RawItem → Candidate → Item, and the writes a batch of candidates comes to against real storage."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aggregator import dedupe, items
from aggregator.config.load import CleanRules, SourceConfig
from aggregator.models import Candidate, Fetched, Item, RawItem
from aggregator.parse.feed import parse_feed
from aggregator.storage import Storage

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
SOURCE = SourceConfig(name="nantong", url="https://ntrb.example.cn/rss", categories=("nantong",))


def _candidate(raw: RawItem, article_id: str = "NW202201242257831752") -> Candidate:
    return Candidate(article_id, SOURCE.name, frozenset({"nantong"}), raw, dedupe.raw_hash(raw))


def test_title_markup_scripts_and_entities_become_plain_text() -> None:
    raw = RawItem(title="<b>南通</b><script>alert(1)</script> &amp;\n  日报&nbsp;", html="<p>x</p>")
    assert items.build_item(_candidate(raw), SOURCE.url, CleanRules(), NOW).title == "南通 & 日报"


def test_author_becomes_plain_text_and_a_blank_one_none() -> None:
    raw = RawItem(title="t", html="<p>x</p>", author=" 记者  <b>张三</b> ")
    item = items.build_item(_candidate(raw), SOURCE.url, CleanRules(), NOW)
    assert item.author == "记者 张三"
    assert item.content_hash == dedupe.content_hash("t", "<p>x</p>", "", "记者 张三", None)
    assert items.build_item(_candidate(RawItem(title="t", author="  ")), SOURCE.url, CleanRules(), NOW).author is None


def test_a_feed_item_without_guid_or_link_keeps_the_id_its_cleaned_title_gave_it() -> None:
    body = (
        '<rss version="2.0"><channel><title>t</title><item>'
        "<title>&lt;b&gt;南通港&lt;/b&gt;  集装箱\n  吞吐量</title><description>&lt;p&gt;正文&lt;/p&gt;</description>"
        "</item></channel></rss>"
    ).encode()
    fetched = Fetched(SOURCE.url, SOURCE.url, 200, {}, body, NOW)
    [raw] = parse_feed(fetched, SOURCE, ZoneInfo("Asia/Shanghai")).items
    assert raw.title != "南通港 集装箱 吞吐量", "the parser leaves the title as written"
    # the formula of identity.py step 6 over the title as parse/feed.py cleaned it before
    digest = hashlib.sha256("南通港 集装箱 吞吐量\x00<p>正文</p>".encode()).hexdigest()[:24]
    [candidate] = items.find_candidates([raw], SOURCE, {}).candidates
    assert candidate.article_id == f"hash:nantong:{digest}"
    assert items.build_item(candidate, SOURCE.url, CleanRules(), NOW).title == "南通港 集装箱 吞吐量"


def test_relative_body_links_resolve_against_the_source_url_when_the_item_has_no_link() -> None:
    raw = RawItem(guid="NW202201242257831752", html='<p><a href="a/1.html">一</a></p>')
    item = items.build_item(_candidate(raw), SOURCE.url, CleanRules(), NOW)
    assert item.html == '<p><a href="https://ntrb.example.cn/a/1.html">一</a></p>'
    assert item.url is None and item.updated == NOW


def test_items_without_an_article_id_are_skipped_with_the_reason() -> None:
    raws = [RawItem(guid="NW202201242257831752", title="a"), RawItem(summary="只有摘要")]
    found = items.find_candidates(raws, SOURCE, {})
    assert [c.article_id for c in found.candidates] == ["NW202201242257831752"]
    assert len(found.skipped) == 1
    assert found.candidates[0].categories == {"nantong"}


def test_a_body_that_could_not_be_fetched_is_marked_so_the_next_poll_retries_it() -> None:
    candidate = _candidate(RawItem(guid="NW202201242257831752", summary="摘要"))
    assert items.completed(candidate, candidate.raw).raw_hash == candidate.raw_hash + items.INCOMPLETE_MARK
    full = RawItem(guid="NW202201242257831752", summary="摘要", html="<p>全文</p>")
    assert items.completed(candidate, full).raw_hash == candidate.raw_hash


def test_a_batch_that_repeats_what_is_stored_prepares_nothing_and_writes_nothing(storage: Storage) -> None:
    prepared: list[str] = []

    async def prepare(candidates: Sequence[Candidate]) -> list[tuple[Candidate, Item]]:
        prepared.extend(c.article_id for c in candidates)
        return [(c, items.build_item(c, SOURCE.url, CleanRules(), NOW)) for c in candidates]

    ids = [f"NW20220124225783175{n}" for n in range(3)]
    batch = [_candidate(RawItem(guid=code, title=code, html="<p>x</p>"), code) for code in ids]
    first = asyncio.run(items.plan_writes(storage, batch + batch[:1], NOW, prepare))
    assert (first.articles, first.count("insert"), first.changed_categories()) == (3, 3, frozenset({"nantong"}))
    storage.apply_update(first.writes, None)
    again = asyncio.run(items.plan_writes(storage, batch, NOW, prepare))
    assert (again.writes, again.articles) == ((), 3)
    assert len(prepared) == 3, "the repeat was neither completed nor cleaned"
