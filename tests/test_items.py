"""items.py: RawItem → Candidate → Item, and the writes a batch of candidates comes to against real storage."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from aggregator import dedupe, items
from aggregator.config.load import CleanRules, SourceConfig
from aggregator.models import Candidate, Item, RawItem
from aggregator.storage import Storage

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
SOURCE = SourceConfig(name="nantong", url="https://ntrb.example.cn/rss", categories=("nantong",))


def _candidate(raw: RawItem, article_id: str = "NW202201242257831752") -> Candidate:
    return Candidate(article_id, SOURCE.name, frozenset({"nantong"}), raw, dedupe.raw_hash(raw))


def test_title_markup_scripts_and_entities_become_plain_text() -> None:
    raw = RawItem(title="<b>南通</b><script>alert(1)</script> &amp;\n  日报&nbsp;", html="<p>x</p>")
    assert items.build_item(_candidate(raw), SOURCE.url, CleanRules(), NOW).title == "南通 & 日报"


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
