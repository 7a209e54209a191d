"""The immutable records that flow between the stages; no I/O, almost no logic.

Flow: SourceConfig + SourceState → fetch → Fetched | NotModified → parse → ParsedFeed(RawItem…)
→ items (identity, categories: Candidate; clean: Item) → dedupe → ItemChange → storage → UpdateOutcome
→ publish. schedule turns each poll into the source's next SourceState.
All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

SourceStatus = Literal["ok", "failing", "retired", "disabled", "new"]


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A recorded failure, kept as data (like reader's ExceptionInfo)."""

    type_name: str
    message: str
    #: which stage failed, so `status` can say "fetch: HTTP 503" without parsing the message
    stage: str
    at: datetime
    traceback_str: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException, stage: str, at: datetime) -> ErrorInfo:
        return cls(
            type_name=type(exc).__name__,
            message=str(exc),
            stage=stage,
            at=at,
            traceback_str="".join(traceback.format_exception(exc)),
        )


@dataclass(frozen=True, slots=True)
class SourceState:
    """What storage remembers about one source between polls."""

    name: str
    #: conditional-GET validators owned by the source (RFC 9110 §13.1)
    etag: str | None = None
    last_modified: str | None = None
    next_poll_at: datetime | None = None
    #: consecutive failures; one success resets it (drives backoff)
    failures: int = 0
    last_error: ErrorInfo | None = None
    last_success_at: datetime | None = None
    last_polled_at: datetime | None = None
    last_status: int | None = None
    #: URL announced by a permanent redirect (301/308), and how many polls in a row announced it
    moved_to: str | None = None
    moved_count: int = 0
    #: set on HTTP 410 Gone: the source is not polled until its config changes
    retired_url: str | None = None
    #: items the last successful poll skipped, by reason code (SkipReason); empty when none were
    skipped_items: Mapping[str, int] = field(default_factory=dict)
    #: the config URL the validators and redirect belong to; a changed URL resets them
    config_url: str | None = None

    def replace(self, **changes: object) -> SourceState:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Fetched:
    """A 2xx response body, complete and within the size cap."""

    url: str
    final_url: str
    status: int
    #: response headers with lower-cased names
    headers: Mapping[str, str]
    body: bytes
    fetched_at: datetime
    #: permanent redirect hops seen on the way (301/308), for moved-source tracking
    permanent_redirect: str | None = None


@dataclass(frozen=True, slots=True)
class NotModified:
    """A 304 answer to a conditional GET: a normal result, not an error."""

    url: str
    headers: Mapping[str, str]
    fetched_at: datetime
    status: int = 304


FetchResult = Fetched | NotModified


@dataclass(frozen=True, slots=True)
class RawItem:
    """One item as the source said it: no cleaning, no id decisions (items.build_item cleans, once).

    Values are as the document holds them once read: entities decoded by the XML parser, JSON strings
    and ids stripped, an HTML element's text with its white space collapsed; markup in a title or
    author is left in. The article_id of a feed item with neither GUID nor link hashes its title as
    clean_text makes it (identity.py, step 6), so that id did not move when parsers stopped cleaning.
    """

    guid: str | None = None
    url: str | None = None
    title: str = ""
    #: full article HTML as sent (content:encoded / atom:content / JSON body)
    html: str = ""
    #: the source's summary or digest, when it has one besides the body
    summary: str = ""
    published: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    #: an explicit article id given by the source (JSON infoCode field)
    explicit_id: str | None = None
    #: the publishing medium (南通日报), used for `categories = "auto"`
    medium: str | None = None
    #: terms the source itself attached to the item
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What parse made of one fetched document: its items and what the next poll needs to know."""

    items: tuple[RawItem, ...] = ()
    #: problems the parser tolerated (malformed but readable), logged, not fatal
    warnings: tuple[str, ...] = ()
    #: RSS <ttl> in minutes, a hint for the next poll
    ttl_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A RawItem with its identity decided and the hash of what the source sent."""

    article_id: str
    source_name: str
    categories: frozenset[str]
    raw: RawItem
    #: hash of the raw item before cleaning: unchanged input is never cleaned again
    raw_hash: str


@dataclass(frozen=True, slots=True)
class Item:
    """One article as stored and published; one per article_id across all sources."""

    article_id: str
    title: str
    url: str | None
    html: str
    published: datetime | None
    updated: datetime
    categories: frozenset[str]
    #: every source the article reached us through
    sources: frozenset[str]
    #: hash of the cleaned, published fields (title, url, html, published, author, summary)
    content_hash: str
    summary: str = ""
    author: str | None = None
    first_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredItem:
    """What dedupe needs to know about an item already in storage."""

    article_id: str
    content_hash: str
    categories: frozenset[str]
    #: source name → raw_hash last seen from that source
    raw_hashes: Mapping[str, str] = field(default_factory=dict)
    updated: datetime | None = None
    published: datetime | None = None
    first_seen: datetime | None = None


ChangeAction = Literal["insert", "update", "link", "refresh", "unchanged"]


@dataclass(frozen=True, slots=True)
class ItemChange:
    """Dedupe's decision for one candidate.

    insert: a new article. update: content changed, `updated` moves. link: same content,
    but a new source or category to remember. refresh: same content from a known source that sent
    something else (white space in a title, a new tag): only its raw hash is remembered, so it is
    not cleaned again, and no feed changes. unchanged: nothing to write.
    """

    action: ChangeAction
    item: Item
    source_name: str
    raw_hash: str

    @property
    def is_published(self) -> bool:
        """Whether subscribers see this change: its categories' feeds are published again."""
        return self.action in ("insert", "update", "link")


#: why an item was skipped: the step from RawItem to stored row that failed for it
SkipReason = Literal["identity", "url", "detail", "clean", "storage"]


@dataclass(frozen=True, slots=True)
class SkippedItem:
    """One item left out of a poll, and why; the rest of its source was stored."""

    reason: SkipReason
    #: the item as the source named it (id, link or GUID), for logs
    item: str
    #: "<reason>: …", the failure in words
    message: str


@dataclass(frozen=True, slots=True)
class RejectedChange:
    """A change the store refused (a constraint of the database); the rest of its poll was stored."""

    change: ItemChange
    #: "store: DataError: …"
    reason: str


OutcomeStatus = Literal["new", "updated", "unchanged", "not_modified", "error", "retired"]


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """What one poll of one source did; recorded and printed by `poll`."""

    source_name: str
    status: OutcomeStatus
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_items: int = 0
    error: ErrorInfo | None = None
    next_poll_at: datetime | None = None
    duration_seconds: float = 0.0
    #: time spent in the network part of the poll (for the fetch latency histogram)
    fetch_seconds: float = 0.0
    http_status: int | None = None
    bytes_fetched: int = 0
    #: categories whose feeds must be republished
    changed_categories: frozenset[str] = frozenset()
    #: new items that joined an earlier item's story (issue 14)
    merged: int = 0


@dataclass(frozen=True, slots=True)
class StoryCounts:
    """Totals for `status` and /metrics."""

    #: stories of two items or more
    stories: int
    #: items that joined an earlier item's story
    merged_items: int
    #: items signed (all of them; per source: those in a story of two or more)
    signed_items: int
