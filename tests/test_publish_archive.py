"""RFC 5005 page arithmetic: every membership position lands in exactly one document."""

from __future__ import annotations

import pytest

from aggregator.publish.archive import plan_archive


@pytest.mark.parametrize(
    ("total", "per_page", "current", "pages", "sealed"),
    [
        (0, 5, range(0), [], 0),
        (3, 5, range(3), [], 0),
        (5, 5, range(5), [], 0),
        (6, 5, range(1, 6), [range(1)], 0),
        (10, 5, range(5, 10), [range(5)], 0),
        (11, 5, range(6, 11), [range(5), range(5, 6)], 1),
        (23, 5, range(18, 23), [range(5), range(5, 10), range(10, 15), range(15, 18)], 3),
    ],
    ids=["empty", "fewer-than-a-page", "exactly-a-page", "one-archived", "one-full-open-page",
         "second-page-seals-the-first", "23-by-5"],
)
def test_positions_split_into_subscription_document_and_pages(
    total: int, per_page: int, current: range, pages: list[range], sealed: int
) -> None:
    plan = plan_archive(total, per_page)
    assert plan.current_range() == current
    assert [plan.page_range(page) for page in range(1, plan.page_count + 1)] == pages
    assert plan.sealed_count == sealed
    covered = [p for r in [*pages, current] for p in r]
    assert covered == list(range(total))


def test_only_pages_with_a_newer_page_are_sealed() -> None:
    plan = plan_archive(23, 5)
    assert [plan.is_sealed(page) for page in range(6)] == [False, True, True, True, False, False]


def test_a_page_outside_the_archive_is_refused() -> None:
    with pytest.raises(ValueError, match="publish: archive page 5 outside 1..4"):
        plan_archive(23, 5).page_range(5)


def test_a_page_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="publish: cannot page"):
        plan_archive(3, 0)
