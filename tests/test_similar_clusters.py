"""Tests for aggregator.similar.clusters: which earlier item, if any, a new item is a reprint of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.similar.clusters import StoredSignature, best_match, numbers_agree, sign_item

AT = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
STORY = ("<p>国务院印发规划。规划提出，到2025年，农业基础更加稳固，乡村振兴战略全面推进，农业农村现代化取得重要进展。"
         "梯次推进有条件的地区率先基本实现农业农村现代化。力争到2035年，乡村全面振兴取得决定性进展。</p>")


def stored(article_id: str, html: str, story_id: str | None = None, minutes: int = 0) -> StoredSignature:
    signature = sign_item("规划", html)
    return StoredSignature(article_id, story_id or article_id, 0, AT + timedelta(minutes=minutes),
                           signature.sketch, signature.numbers)


@pytest.mark.parametrize(
    ("first", "second", "agree"),
    [
        ({"0d52", "3589"}, {"0d52", "3589", "8"}, True),  # a caption added a number
        ({"2025", "2035"}, {"2025"}, True),  # a cut paragraph lost one
        (set(), {"2025"}, True),
        ({"0d52", "3589", "11234"}, {"0d31", "3601", "9876"}, False),  # another day's market wrap
        ({"600522", "2021"}, {"600276", "2021"}, False),  # another company's notice
    ],
    ids=["caption-adds", "cut-removes", "no-numbers", "market-wrap", "announcement"],
)
def test_numbers_agree_when_the_fewer_are_in_the_other(first: set[str], second: set[str], agree: bool) -> None:
    assert numbers_agree(frozenset(first), frozenset(second)) is agree


def test_new_item_joins_the_most_similar_candidate_above_the_threshold() -> None:
    cut = stored("NW1", STORY[:80] + "</p>", "NW0")
    whole = stored("NW2", STORY + "<p>责任编辑：张伟</p>", "NW0", minutes=5)
    match = best_match(sign_item("规划", STORY), [cut, whole], 0.5)
    assert match is not None and (match.article_id, match.story_id, match.similarity) == ("NW2", "NW0", 1.0)


def test_equal_similarity_goes_to_the_earliest_candidate() -> None:
    later, earlier = stored("NW1", STORY, minutes=10), stored("NW2", STORY, minutes=1)
    match = best_match(sign_item("规划", STORY), [later, earlier], 0.5)
    assert match is not None and match.article_id == "NW2"


def test_no_match_below_the_threshold_or_when_the_numbers_differ() -> None:
    other_year = stored("NW1", STORY.replace("2035", "2050"))
    assert best_match(sign_item("规划", STORY), [other_year], 0.5) is None
    assert best_match(sign_item("规划", STORY), [stored("NW2", STORY[:60] + "</p>")], 0.9) is None
    assert best_match(sign_item("规划", STORY), [], 0.5) is None
