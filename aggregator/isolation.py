"""The per-item fault boundary: whatever goes wrong while one raw item becomes a stored item skips that item only.

The steps from a RawItem to a stored row (identity, link canonicalisation, article body, cleaning,
storage) run in the parse worker, the event loop and the store; each hands its one item to
`item_or_skip`, the only broad `except` around an item. A failure becomes a SkippedItem with a
reason code, counted in the poll's outcome and in `status --json`, and logged; the rest of the
source is stored (docs/operations.md, "Fault isolation").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aggregator.models import RawItem, SkippedItem, SkipReason

log = logging.getLogger("aggregator.update")

T = TypeVar("T")


def item_or_skip(reason: SkipReason, step: Callable[..., T], raw: RawItem, *args: object) -> T | SkippedItem:
    """`step(*args)`, or the SkippedItem saying why it failed for `raw`."""
    try:
        return step(*args)
    except Exception as e:  # any exception: an item, however odd, costs only itself (no bug hides: it is logged)
        return skipped(reason, raw, e)


async def item_or_skip_async(
    reason: SkipReason, step: Callable[..., Awaitable[T]], raw: RawItem, *args: object
) -> T | SkippedItem:
    """`await step(*args)`, or the SkippedItem saying why it failed for `raw`."""
    try:
        return await step(*args)
    except Exception as e:  # as item_or_skip
        return skipped(reason, raw, e)


def skipped(reason: SkipReason, raw: RawItem, error: BaseException) -> SkippedItem:
    message = str(error) or type(error).__name__
    if not message.startswith(f"{reason}:"):
        message = f"{reason}: {type(error).__name__}: {message}"
    return SkippedItem(reason=reason, item=describe_item(raw), message=message)


def describe_item(raw: RawItem) -> str:
    """How a log line names an item: its explicit id, link or GUID, else its title (shortened)."""
    name = raw.explicit_id or raw.url or raw.guid or raw.title or "(no id)"
    return name if len(name) <= 120 else name[:119] + "…"


def log_skipped(source_name: str, items: tuple[SkippedItem, ...] | list[SkippedItem]) -> None:
    for item in items:
        log.warning("%s: source=%s skipped item %s: %s", item.reason, source_name, item.item, item.message,
                    extra={"source": source_name, "reason": item.reason, "item": item.item})
