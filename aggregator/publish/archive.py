"""RFC 5005 archive arithmetic: which membership positions go in the subscription document and each archive page.

Pure. Storage numbers every item's membership in a category 0, 1, 2, … in the order it joined,
append-only (`Storage.list_items_in_order`). With N = max_items_per_feed:

- the subscription document holds the newest N positions, [total - N, total);
- everything older is archived in pages of N, page 1 = positions [0, N), page 2 = [N, 2N), …;
  the last page may be partial and grows as items fall out of the subscription document;
- a page is *sealed* once a newer page exists: it is full and its `next-archive` link is known,
  so it never changes again (RFC 5005 §4: "the set of entries contained in an archive document
  published at a particular URI SHOULD NOT change over time").

Following `prev-archive` from the subscription document therefore visits every position exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ArchivePlan:
    """How one feed's `total` items split into a subscription document and archive pages."""

    total: int
    per_page: int

    @property
    def archived_count(self) -> int:
        """Items older than the subscription document."""
        return max(0, self.total - self.per_page)

    @property
    def page_count(self) -> int:
        return -(-self.archived_count // self.per_page)

    @property
    def sealed_count(self) -> int:
        """Pages 1 … sealed_count are complete and never rewritten."""
        return max(0, self.page_count - 1)

    def current_range(self) -> range:
        """Membership positions in the subscription document."""
        return range(self.archived_count, self.total)

    def page_range(self, page: int) -> range:
        """Membership positions on archive page `page` (1-based)."""
        if not 1 <= page <= self.page_count:
            raise ValueError(f"publish: archive page {page} outside 1..{self.page_count}")
        start = (page - 1) * self.per_page
        return range(start, min(start + self.per_page, self.archived_count))

    def is_sealed(self, page: int) -> bool:
        return 1 <= page <= self.sealed_count


def plan_archive(total: int, per_page: int) -> ArchivePlan:
    if total < 0 or per_page < 1:
        raise ValueError(f"publish: cannot page {total} items by {per_page}")
    return ArchivePlan(total=total, per_page=per_page)
