"""dedupe: hashes and plan_changes decisions, as table tests without I/O."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from aggregator import dedupe
from aggregator.models import Candidate, Item, RawItem, StoredItem

T0 = datetime(2022, 1, 24, 0, 48, 9, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def _candidate(source: str = "a", categories: frozenset[str] = frozenset({"x"}), title: str = "t") -> Candidate:
    raw = RawItem(guid="g", title=title, html="<p>body</p>", published=T0)
    return Candidate("NW1", source, categories, raw, dedupe.raw_hash(raw))


def _item(candidate: Candidate, html: str = "<p>body</p>") -> Item:
    content = dedupe.content_hash(candidate.raw.title, html, "", None, T0)
    return Item("NW1", candidate.raw.title, "https://e.example/1", html, T0, T0, candidate.categories,
                frozenset({candidate.source_name}), content, first_seen=NOW)


def _stored(item: Item, raw_hashes: dict[str, str], updated: datetime = T0) -> StoredItem:
    return StoredItem(item.article_id, item.content_hash, item.categories, raw_hashes, updated, T0, T0)


def test_new_article_is_inserted() -> None:
    candidate = _candidate()
    [change] = dedupe.plan_changes([(candidate, _item(candidate))], {}, NOW)
    assert change.action == "insert"


def test_same_content_from_same_source_is_unchanged_and_not_cleaned_again() -> None:
    candidate = _candidate()
    stored = _stored(_item(candidate), {"a": candidate.raw_hash})
    assert not dedupe.needs_cleaning(candidate, stored)
    [change] = dedupe.plan_changes([(candidate, _item(candidate))], {"NW1": stored}, NOW)
    assert change.action == "unchanged"


def test_same_article_from_a_second_source_is_linked_with_the_union_of_categories() -> None:
    first = _candidate("a", frozenset({"x"}))
    second = _candidate("b", frozenset({"y"}))
    stored = _stored(_item(first), {"a": first.raw_hash})
    assert dedupe.needs_cleaning(second, stored)
    [change] = dedupe.plan_changes([(second, _item(second))], {"NW1": stored}, NOW)
    assert change.action == "link"
    assert change.item.categories == {"x", "y"}
    assert change.item.updated == T0


def test_same_content_sent_differently_by_the_same_source_only_refreshes_its_raw_hash() -> None:
    before = _candidate(title="t")
    after = _candidate(title="  t ")  # cleans to the same title: the item a subscriber sees is the same
    stored = _stored(_item(before), {"a": before.raw_hash})
    assert dedupe.needs_cleaning(after, stored)
    [change] = dedupe.plan_changes([(after, _item(before))], {"NW1": stored}, NOW)
    assert (change.action, change.raw_hash, change.is_published) == ("refresh", after.raw_hash, False)
    assert change.item.updated == T0


def test_same_content_in_a_new_category_of_the_same_source_is_linked_and_published() -> None:
    before = _candidate(categories=frozenset({"x"}))
    after = _candidate(categories=frozenset({"x", "y"}))
    stored = _stored(_item(before), {"a": before.raw_hash})
    [change] = dedupe.plan_changes([(after, _item(after))], {"NW1": stored}, NOW)
    assert (change.action, change.is_published) == ("link", True)


def test_changed_title_updates_in_place_and_moves_updated() -> None:
    old = _candidate(title="old")
    new = _candidate(title="new")
    stored = _stored(_item(old), {"a": old.raw_hash})
    [change] = dedupe.plan_changes([(new, _item(new))], {"NW1": stored}, NOW)
    assert change.action == "update"
    assert change.item.title == "new"
    assert change.item.updated == NOW
    assert change.item.first_seen == T0


def test_update_keeps_a_newer_source_updated_time() -> None:
    old, new = _candidate(title="old"), _candidate(title="new")
    stored = _stored(_item(old), {"a": old.raw_hash})
    newer = dataclasses.replace(_item(new), updated=T0 + timedelta(days=1))
    [change] = dedupe.plan_changes([(new, newer)], {"NW1": stored}, NOW)
    assert change.item.updated == T0 + timedelta(days=1)


def test_repeated_record_in_one_list_is_kept_once() -> None:
    a, b = _candidate(title="first"), _candidate(title="second")
    assert dedupe.first_per_article([a, b]) == [a]


def test_content_hash_ignores_nothing_a_subscriber_sees_but_the_link() -> None:
    base = dedupe.content_hash("t", "<p>x</p>", "", None, T0)
    assert base == dedupe.content_hash("t", "<p>x</p>", "", None, T0)
    assert base != dedupe.content_hash("t", "<p>y</p>", "", None, T0)
    assert base != dedupe.content_hash("t2", "<p>x</p>", "", None, T0)
    assert base != dedupe.content_hash("t", "<p>x</p>", "", "author", T0)


def test_raw_hash_changes_with_any_source_field() -> None:
    raw = RawItem(guid="g", title="t", html="h")
    assert dedupe.raw_hash(raw) != dedupe.raw_hash(dataclasses.replace(raw, summary="s"))
    assert dedupe.raw_hash(raw) == dedupe.raw_hash(RawItem(guid="g", title="t", html="h"))
