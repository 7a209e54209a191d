"""Sign new items and ask for their stories: the hooks update uses (issue 14).

Signing runs in a worker, in the same call that cleans the items (update._build_items); the stories are
placed by storage in the transaction that stores the items (SqlStorage.apply_update with a StoryRequest),
so a crash never leaves stored items without a story.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from aggregator.config.load import Settings
from aggregator.models import Item
from aggregator.similar.clusters import sign_item
from aggregator.similar.signature import Signature, check_hash_function
from aggregator.storage import SignedItem, StoryRequest


def sign_items(items: Sequence[Item]) -> dict[str, Signature]:
    """The signature of each item's title and cleaned body, by article_id."""
    check_hash_function()
    return {item.article_id: sign_item(item.title, item.html) for item in items}


def story_request(
    new_items: Sequence[Item], signatures: Mapping[str, Signature], settings: Settings, now: datetime
) -> StoryRequest | None:
    """What to ask storage to place: each new item (that was signed) with its signature; None when none."""
    signed = tuple(
        SignedItem(item.article_id, item.categories, item.first_seen or now, signatures[item.article_id])
        for item in new_items if item.article_id in signatures
    )
    if not signed:
        return None
    return StoryRequest(signed, settings.similar_threshold, settings.similar_window, now)
