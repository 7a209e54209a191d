"""Group newly stored items into stories: sign them (in a worker) and let storage place them; the hook update uses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aggregator.config.load import Settings
from aggregator.models import Item
from aggregator.similar.clusters import sign_item
from aggregator.similar.signature import Signature, check_hash_function
from aggregator.storage import SignedItem, Storage, StoryAssignment


def sign_items(texts: Sequence[tuple[str, str]]) -> list[Signature]:
    """The signature of each (title, cleaned html); module-level so a process pool can run it."""
    check_hash_function()
    return [sign_item(title, html) for title, html in texts]


def place_in_stories(
    storage: Storage, new_items: Sequence[Item], signatures: Sequence[Signature], settings: Settings, now: datetime
) -> list[StoryAssignment]:
    """Each new item into the story of its most similar earlier item, or a story of its own."""
    signed = [
        SignedItem(item.article_id, item.categories, item.first_seen or now, signature)
        for item, signature in zip(new_items, signatures, strict=True)
    ]
    return storage.assign_stories(
        signed, threshold=settings.similar_threshold, window=settings.similar_window, now=now
    )
