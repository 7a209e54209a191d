"""`aggregator similar ITEM_ID`: the story an item belongs to, one line per member, as a table or JSON.

Pure: the caller reads the members from storage. A member's similarity is the estimate stored when it
joined: to the earlier item it was found to reprint (MATCHED), which the representative does not have.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aggregator.ops.status import display_width

if TYPE_CHECKING:
    from aggregator.storage import StoryMember

_HEADERS = ("#", "ITEM", "SIMILARITY", "MATCHED", "SEEN", "CATEGORIES", "TITLE")


def format_story(article_id: str, members: Sequence[StoryMember], as_json: bool) -> str:
    if as_json:
        return json.dumps(_story_json(article_id, members), ensure_ascii=False, indent=2)
    if not members:
        return f"{article_id} is in no story: it was stored before same-story detection, or with it off"
    story_id = members[0].story_id
    head = (f"story {story_id}: {len(members)} item{'s' if len(members) != 1 else ''}, "
            f"representative {story_id}")
    cells = [_HEADERS, *(_member_cells(member, article_id) for member in members)]
    widths = [max(display_width(line[i]) for line in cells) for i in range(len(_HEADERS))]
    lines = [head] + ["  ".join(c + " " * (w - display_width(c)) for c, w in zip(line, widths)).rstrip()
                      for line in cells]
    return "\n".join(lines)


def _member_cells(member: StoryMember, asked: str) -> tuple[str, ...]:
    marker = "*" if member.article_id == asked else ""
    return (
        str(member.member_index),
        member.article_id + marker,
        "representative" if member.similarity is None else f"{member.similarity:.3f}",
        member.matched_id or "-",
        member.seen_at.strftime("%Y-%m-%d %H:%M UTC"),
        ",".join(sorted(member.categories)) or "-",
        member.title,
    )


def _story_json(article_id: str, members: Sequence[StoryMember]) -> dict[str, object]:
    return {
        "item": article_id,
        "story_id": members[0].story_id if members else None,
        "members": [
            {
                "article_id": m.article_id,
                "member_index": m.member_index,
                "similarity": m.similarity,
                "matched_id": m.matched_id,
                "seen_at": m.seen_at.isoformat(),
                "categories": sorted(m.categories),
                "sources": sorted(m.sources),
                "title": m.title,
                "url": m.url,
            }
            for m in members
        ],
    }
