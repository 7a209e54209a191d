"""Decide what to write for each incoming item: insert, update in place, link, or nothing; pure.

Two hashes, after reader's `_hash_utils.py` (a version prefix, volatile fields excluded):
`raw_hash` is over what the source sent, so an item whose source repeats itself is never cleaned
again; `content_hash` is over the cleaned, published fields, so an item is updated (and its `updated`
moves) only when what subscribers see really changed. The link is excluded from the content hash: the
same article arrives under several URL shapes, and the first one seen stays the item's link.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from aggregator.models import Candidate, ChangeAction, Item, ItemChange, RawItem, StoredItem

#: bump when the hashed fields change, so every stored hash is recomputed once
_HASH_VERSION = "1"


def raw_hash(raw: RawItem) -> str:
    """Hash of everything the source said about an item."""
    return _hash(
        {
            "guid": raw.guid,
            "url": raw.url,
            "title": raw.title,
            "html": raw.html,
            "summary": raw.summary,
            "published": _iso(raw.published),
            "updated": _iso(raw.updated),
            "author": raw.author,
            "id": raw.explicit_id,
            "medium": raw.medium,
            "tags": list(raw.tags),
        }
    )


def content_hash(title: str, html: str, summary: str, author: str | None, published: datetime | None) -> str:
    """Hash of the cleaned fields a subscriber sees (the link excluded, see the module docstring)."""
    return _hash(
        {"title": title, "html": html, "summary": summary, "author": author, "published": _iso(published)}
    )


def first_per_article(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Keep the first candidate of each article_id: a list may repeat a record (seen in eastmoney lists)."""
    seen: set[str] = set()
    unique = []
    for candidate in candidates:
        if candidate.article_id not in seen:
            seen.add(candidate.article_id)
            unique.append(candidate)
    return unique


def needs_cleaning(candidate: Candidate, stored: StoredItem | None) -> bool:
    """False when this source already sent exactly this and the item is already in its categories."""
    return stored is None or _tells_something_new(candidate, stored)


def plan_changes(
    cleaned: Sequence[tuple[Candidate, Item]],
    stored: Mapping[str, StoredItem],
    now: datetime,
) -> list[ItemChange]:
    """One ItemChange per cleaned candidate, against the stored state read just before writing.

    `Item.updated` is the source's own updated time when it is newer than what we have, else `now`:
    it moves only on a real content change.
    """
    changes = []
    for candidate, item in cleaned:
        action: ChangeAction
        existing = stored.get(candidate.article_id)
        if existing is None:
            action = "insert"
            planned = item
        elif existing.content_hash != item.content_hash:
            action = "update"
            moved = item.updated if existing.updated is None or item.updated > existing.updated else now
            planned = dataclasses.replace(
                item,
                updated=moved,
                categories=existing.categories | item.categories,
                published=item.published or existing.published,
                first_seen=existing.first_seen,
            )
        elif _tells_something_new(candidate, existing):
            # a known source's new raw hash is only remembered (refresh): nothing a subscriber sees moved
            action = "link" if _is_new_to(candidate, existing) else "refresh"
            planned = dataclasses.replace(
                item,
                updated=existing.updated or item.updated,
                categories=existing.categories | item.categories,
                first_seen=existing.first_seen,
            )
        else:
            action = "unchanged"
            planned = item
        changes.append(
            ItemChange(action=action, item=planned, source_name=candidate.source_name, raw_hash=candidate.raw_hash)
        )
    return changes


def _tells_something_new(candidate: Candidate, stored: StoredItem) -> bool:
    """This source sent something else than last time, or files the item under a category it lacks."""
    return stored.raw_hashes.get(candidate.source_name) != candidate.raw_hash or _is_new_to(candidate, stored)


def _is_new_to(candidate: Candidate, stored: StoredItem) -> bool:
    """The item reaches us through a source it lacks, or files under a category it lacks: feeds show both."""
    return candidate.source_name not in stored.raw_hashes or not candidate.categories <= stored.categories


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _hash(fields: Mapping[str, object]) -> str:
    payload = json.dumps({k: v for k, v in fields.items() if v not in (None, "", [])}, sort_keys=True,
                         ensure_ascii=False)
    return _HASH_VERSION + hashlib.sha256(payload.encode()).hexdigest()[:31]
