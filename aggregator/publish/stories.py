"""Show stories in a feed (issue 14): collapse each to its earliest item, or keep every item marked with its story.

`similar = "collapse"` (all.atom's default) publishes one entry per story: the story's earliest item
in this feed, its content followed by "同时刊登于：" and links to the other papers' copies, which
are also `<link rel="related">` elements, and its `updated` moved to when the story last grew.
`similar = "keep"` (a category's default) publishes every item; the items of a story of two or more
carry `<category scheme="tag:aggregator,2022:story" term="<story id>">`, the story id being the
article_id of its first item. The JSON Feed twin gets the same entries and the same content.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aggregator.config.load import Config, SimilarMode
from aggregator.models import Item
from aggregator.publish.layout import ALL_FEED

if TYPE_CHECKING:
    from aggregator.storage import Storage, StoryMember, StoryView

#: the `scheme` of the category that carries an entry's story id
STORY_SCHEME = "tag:aggregator,2022:story"
ALSO_IN = "同时刊登于："
#: categories.TITLE_SUFFIX, the end of a learnt category's title (南通日报新闻); not imported from
#: there, as that module loads pypinyin, which publishing never needs
TITLE_SUFFIX = "新闻"


@dataclass(frozen=True, slots=True)
class RelatedLink:
    """Another paper's copy of the story, for `<link rel="related">`."""

    url: str
    #: the paper's name (泉州晚报)
    title: str


@dataclass(frozen=True, slots=True)
class EntryStory:
    """What an entry shows of its story."""

    story_id: str
    related: tuple[RelatedLink, ...] = ()


def similar_mode(config: Config, name: str) -> SimilarMode:
    """all.atom follows settings.similar; a category its [categories.<id>] similar, else "keep"."""
    if name == ALL_FEED:
        return config.settings.similar
    category = config.categories.get(name)
    return category.similar if category is not None else "keep"


def present_stories(
    storage: Storage, config: Config, name: str, items: Sequence[Item]
) -> tuple[list[Item], dict[str, EntryStory]]:
    """The entries of one feed page (`items` in store order) and what each shows of its story."""
    views = storage.stories_of([item.article_id for item in items]) if items else {}
    if not views:
        return list(items), {}
    if similar_mode(config, name) == "keep":
        return list(items), {article_id: EntryStory(view.story_id) for article_id, view in views.items()}
    if name == ALL_FEED:  # every item is in all.atom, so the story's first item stands for it
        hidden = {article_id for article_id, view in views.items() if article_id != view.story_id}
    else:
        hidden = storage.earlier_members_in(list(views), name)
    entries: list[Item] = []
    stories: dict[str, EntryStory] = {}
    for item in items:
        view = views.get(item.article_id)
        if view is None:
            entries.append(item)
        elif item.article_id not in hidden:
            others = [member for member in view.members if member.article_id != item.article_id]
            entries.append(_with_story(item, view, others, config))
            stories[item.article_id] = EntryStory(view.story_id, tuple(
                RelatedLink(member.url, paper_name(member, config)) for member in others if member.url
            ))
    return entries, stories


def paper_name(member: StoryMember, config: Config) -> str:
    """The paper a member came from: its category's title without 新闻 (泉州晚报新闻 → 泉州晚报), else its source."""
    for category in sorted(member.categories):
        if category in config.categories:
            return config.categories[category].title.removesuffix(TITLE_SUFFIX) or category
    return min(member.sources, default=member.article_id)


def _with_story(item: Item, view: StoryView, others: Sequence[StoryMember], config: Config) -> Item:
    """The item with the other papers listed after its content, `updated` at the story's last growth."""
    links = []
    for member in others:
        name = html.escape(paper_name(member, config))
        links.append(f'<a href="{html.escape(member.url)}">{name}</a>' if member.url else name)
    unlisted = view.member_count - 1 - len(others)
    more = f"等{view.member_count - 1}家" if unlisted > 0 else ""
    listing = f"<p>{ALSO_IN}{'、'.join(links)}{more}</p>"
    return dataclasses.replace(item, html=item.html + listing, updated=max(item.updated, view.updated))


