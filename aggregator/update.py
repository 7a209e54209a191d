"""Take one source through fetch → parse → identity → clean → dedupe → store; the only place stages meet.

Decisions live in the pure modules (schedule, identity, dedupe); this module wires them and owns the one
broad `except`: a failing source is recorded as data (ErrorInfo, failures, backoff) and never stops the
others. CPU-heavy steps (parse, clean) run in an optional process pool so a poll uses every core;
storage is read and written only here, in the event loop's thread, so writes are never concurrent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aggregator import dedupe, schedule
from aggregator.config.load import Config, SourceConfig
from aggregator.errors import FetchError, ItemError, SourceError
from aggregator.fetch.client import Fetcher
from aggregator.models import (
    Candidate,
    ErrorInfo,
    Fetched,
    Item,
    NotModified,
    OutcomeStatus,
    ParsedFeed,
    RawItem,
    SourceState,
    UpdateOutcome,
)
from aggregator.storage import Storage

log = logging.getLogger("aggregator.update")

#: polls in a row that must announce the same permanent redirect before we follow it (issue 4)
MOVED_AFTER_POLLS = 3
#: appended to the raw hash of an item whose article body could not be fetched, so it is retried
INCOMPLETE_MARK = ":incomplete"

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


def select_due(config: Config, states: Mapping[str, SourceState], now: datetime) -> list[SourceConfig]:
    """Enabled, not retired sources whose next poll time has come."""
    due = []
    for source in config.sources:
        state = _state_for(source, states.get(source.name))
        retired = schedule.is_retired(state.retired_url, source.url)
        if source.enabled and not retired and schedule.is_due(state.next_poll_at, now):
            due.append(source)
    return due


@dataclass(frozen=True, slots=True)
class _ParseResult:
    """What the worker returns from parsing one document."""

    feed: ParsedFeed
    candidates: tuple[Candidate, ...]
    skipped: tuple[str, ...]
    #: categories first seen in this document (slug → "<medium>新闻"), for `categories = "auto"`
    new_category_titles: Mapping[str, str]


class Updater:
    """Polls sources and stores what changed; one instance per `poll` run or daemon."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        fetcher: Fetcher,
        *,
        executor: Executor | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.storage = storage
        self.fetcher = fetcher
        self.executor = executor
        self.clock = clock
        self._random = random.Random()

    async def update_sources(
        self,
        sources: Iterable[SourceConfig],
        on_outcome: Callable[[UpdateOutcome], None] | None = None,
    ) -> list[UpdateOutcome]:
        """Poll `sources` concurrently, at most `settings.concurrency` at a time."""
        states = self.storage.get_source_states()
        bound = asyncio.Semaphore(self.config.settings.concurrency)

        async def one(source: SourceConfig) -> UpdateOutcome:
            async with bound:
                outcome = await self._update(source, states.get(source.name))
            if on_outcome is not None:
                on_outcome(outcome)
            return outcome

        return list(await asyncio.gather(*(one(source) for source in sources)))

    async def update_source(self, source: SourceConfig) -> UpdateOutcome:
        """Poll one source; never raises for a source failure (it is recorded and backed off)."""
        return await self._update(source, self.storage.get_source_state(source.name))

    async def _update(self, source: SourceConfig, stored: SourceState | None) -> UpdateOutcome:
        state = _state_for(source, stored)
        started = time.monotonic()
        now = self.clock()
        if schedule.is_retired(state.retired_url, source.url):
            return UpdateOutcome(source.name, "retired", next_poll_at=None)
        url = state.moved_to if state.moved_to and state.moved_count >= MOVED_AFTER_POLLS else source.url
        fetch_seconds = 0.0
        try:
            result = await self.fetcher.fetch_source(source, url, state)
            fetch_seconds = time.monotonic() - started
            if isinstance(result, NotModified):
                return self._record_not_modified(source, state, result, now, started, fetch_seconds)
            return await self._store_fetched(source, state, result, now, started, fetch_seconds)
        except SourceError as exc:
            return self._record_failure(source, state, exc, exc.stage, now, started, fetch_seconds)
        except Exception as exc:  # a bug on one odd document must not stop the batch; logged with traceback
            log.exception("update: source=%s unexpected error", source.name)
            return self._record_failure(source, state, exc, "update", now, started, fetch_seconds)

    async def _store_fetched(
        self, source: SourceConfig, state: SourceState, fetched: Fetched, now: datetime,
        started: float, fetch_seconds: float,
    ) -> UpdateOutcome:
        parsed = await self._parse_pages(source, fetched)
        for warning in parsed.feed.warnings:
            log.warning("parse: source=%s %s", source.name, warning)
        for reason in parsed.skipped:
            log.warning("identity: source=%s skipped item: %s", source.name, reason)
        self.storage.add_category_titles(parsed.new_category_titles)
        candidates = dedupe.first_per_article(parsed.candidates)
        stored = self.storage.get_stored_items([c.article_id for c in candidates])
        to_clean = [c for c in candidates if dedupe.needs_cleaning(c, stored.get(c.article_id))]
        to_clean = await self._complete(source, to_clean)
        changes = []
        if to_clean:  # a source that repeats itself costs no cleaning and no second read
            items = await self._run(_build_items, tuple(to_clean), source, now)
            # Re-read just before planning: another source may have stored the same article meanwhile.
            # Nothing awaits between this read and apply_update, so no other poll interleaves.
            fresh = self.storage.get_stored_items([c.article_id for c in to_clean])
            planned = dedupe.plan_changes(list(zip(to_clean, items, strict=True)), fresh, now)
            changes = [change for change in planned if change.action != "unchanged"]
        hint = schedule.freshness_hint(fetched.headers, now, parsed.feed.ttl_minutes)
        new_state = _success_state(
            state, source, now, fetched.url, fetched.status, fetched.headers, fetched.permanent_redirect
        )
        new_state = new_state.replace(next_poll_at=self._next_poll(source, now, hint))
        self.storage.apply_update(changes, new_state)
        inserted = sum(c.action == "insert" for c in changes)
        updated = sum(c.action == "update" for c in changes)
        status: OutcomeStatus = "new" if inserted else "updated" if updated else "unchanged"
        outcome = UpdateOutcome(
            source.name, status, inserted=inserted, updated=updated,
            unchanged=len(candidates) - inserted - updated, skipped_items=len(parsed.skipped),
            next_poll_at=new_state.next_poll_at, duration_seconds=time.monotonic() - started,
            fetch_seconds=fetch_seconds, http_status=fetched.status, bytes_fetched=len(fetched.body),
            changed_categories=frozenset(cat for c in changes for cat in c.item.categories),
        )
        _log_outcome(outcome)
        return outcome

    async def _parse_pages(self, source: SourceConfig, first: Fetched) -> _ParseResult:
        """Parse the fetched document, and for paginated html sources the further list pages too."""
        pages = [first]
        if source.kind == "html" and source.max_pages > 1:
            from aggregator.enrich import fetch_list_pages

            pages += await fetch_list_pages(self.fetcher, source, first)
        taken = self._taken_categories() if _files_by_medium(source) else {}
        results = [await self._run(_parse_candidates, page, source, self.config.timezone_of(source), taken)
                   for page in pages]
        return _ParseResult(
            feed=results[0].feed,
            candidates=tuple(c for r in results for c in r.candidates),
            skipped=tuple(s for r in results for s in r.skipped),
            new_category_titles={k: v for r in results for k, v in r.new_category_titles.items()},
        )

    def _taken_categories(self) -> dict[str, str]:
        """slug → medium of every category already in use (feeds.toml titles and learnt ones)."""
        from aggregator.categories import media_by_slug

        titles = {**self.storage.category_titles(), **{k: c.title for k, c in self.config.categories.items()}}
        return media_by_slug(titles)

    async def _complete(self, source: SourceConfig, candidates: list[Candidate]) -> list[Candidate]:
        """Fetch article bodies (JSON detail endpoints, article pages) for the new or changed items only."""
        if not candidates or not _needs_completion(source):
            return candidates
        from aggregator.enrich import complete_items

        raws = await complete_items(self.fetcher, source, [c.raw for c in candidates])
        return [_completed(c, raw) for c, raw in zip(candidates, raws, strict=True)]

    def _record_not_modified(
        self, source: SourceConfig, state: SourceState, result: NotModified, now: datetime,
        started: float, fetch_seconds: float,
    ) -> UpdateOutcome:
        hint = schedule.freshness_hint(result.headers, now, None)
        new_state = _success_state(state, source, now, result.url, result.status, result.headers, None)
        new_state = new_state.replace(next_poll_at=self._next_poll(source, now, hint))
        self.storage.save_source_state(new_state)
        outcome = UpdateOutcome(
            source.name, "not_modified", next_poll_at=new_state.next_poll_at,
            duration_seconds=time.monotonic() - started, fetch_seconds=fetch_seconds, http_status=result.status,
        )
        _log_outcome(outcome)
        return outcome

    def _record_failure(
        self, source: SourceConfig, state: SourceState, exc: Exception, stage: str, now: datetime,
        started: float, fetch_seconds: float,
    ) -> UpdateOutcome:
        failures = state.failures + 1
        status = exc.status if isinstance(exc, FetchError) else None
        retry_after = (
            None if not isinstance(exc, FetchError) or exc.retry_after_seconds is None
            else timedelta(seconds=exc.retry_after_seconds)
        )
        next_poll = schedule.next_poll_after_failure(
            now, failures, self.config.interval_of(source), self.config.settings.max_backoff, retry_after,
            self._random.random(),
        )
        error = ErrorInfo.from_exception(exc, stage, now)
        new_state = state.replace(
            failures=failures, last_error=error, last_polled_at=now, last_status=status, next_poll_at=next_poll,
            config_url=source.url, retired_url=source.url if status == 410 else None,
        )
        self.storage.save_source_state(new_state)
        outcome = UpdateOutcome(
            source.name, "retired" if status == 410 else "error", error=error, next_poll_at=next_poll,
            duration_seconds=time.monotonic() - started, fetch_seconds=fetch_seconds, http_status=status,
        )
        _log_outcome(outcome)
        return outcome

    def _next_poll(self, source: SourceConfig, now: datetime, hint: timedelta | None) -> datetime:
        settings = self.config.settings
        return schedule.next_poll_at(now, self.config.interval_of(source), hint, settings.max_interval)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound work in the pool when there is one, inline otherwise."""
        if self.executor is None:
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


def _state_for(source: SourceConfig, state: SourceState | None) -> SourceState:
    """The stored state, reset when ops changed the source's URL (validators belong to the old URL)."""
    if state is None:
        return SourceState(name=source.name, config_url=source.url)
    if state.config_url not in (None, source.url):
        return SourceState(name=source.name, config_url=source.url, last_success_at=state.last_success_at)
    return state


def _success_state(
    state: SourceState, source: SourceConfig, now: datetime, url: str, status: int, headers: Mapping[str, str],
    permanent_redirect: str | None,
) -> SourceState:
    """State after a 2xx/304: validators kept on 304, failures reset, permanent redirects counted."""
    moved_to, moved_count = None, 0
    if url == state.moved_to:
        moved_to, moved_count = state.moved_to, state.moved_count
    elif permanent_redirect:
        moved_to = permanent_redirect
        moved_count = state.moved_count + 1 if permanent_redirect == state.moved_to else 1
    not_modified = status == 304
    return state.replace(
        etag=headers.get("etag") or (state.etag if not_modified else None),
        last_modified=headers.get("last-modified") or (state.last_modified if not_modified else None),
        failures=0, last_error=None, last_success_at=now, last_polled_at=now, last_status=status,
        moved_to=moved_to, moved_count=moved_count, retired_url=None, config_url=source.url,
    )


def _needs_completion(source: SourceConfig) -> bool:
    """Whether the source's items get their bodies from a second request (detail endpoint, article page)."""
    if source.full_content:
        return True
    if source.kind == "json":
        return source.detail_url is not None or source.preset is not None
    return source.kind == "html" and source.body_selector is not None


def _completed(candidate: Candidate, raw: RawItem) -> Candidate:
    """The candidate with its article body. When the body could not be fetched (enrich kept the list
    record as it was), the raw hash is marked so it never matches: the next poll tries again, and the
    summary is published meanwhile."""
    raw_hash = candidate.raw_hash if raw != candidate.raw else candidate.raw_hash + INCOMPLETE_MARK
    return Candidate(candidate.article_id, candidate.source_name, candidate.categories, raw, raw_hash)


def _log_outcome(outcome: UpdateOutcome) -> None:
    level = logging.WARNING if outcome.error else logging.INFO
    log.log(
        level, "update: source=%s outcome=%s new=%d updated=%d unchanged=%d status=%s duration=%.3fs%s",
        outcome.source_name, outcome.status, outcome.inserted, outcome.updated, outcome.unchanged,
        outcome.http_status, outcome.duration_seconds, f" error={outcome.error.message}" if outcome.error else "",
        extra={
            "source": outcome.source_name, "outcome": outcome.status, "new": outcome.inserted,
            "updated": outcome.updated, "unchanged": outcome.unchanged, "http_status": outcome.http_status,
            "duration_seconds": round(outcome.duration_seconds, 3),
            **({"error": outcome.error.message, "stage": outcome.error.stage} if outcome.error else {}),
        },
    )


# --- worker functions: module-level so a process pool can pickle them -------------------------------
# They import the parser and the cleaner themselves: a pass that only gets 304s never loads them
# (a fifth of `poll`'s start-up), and pool workers load them once each.


def _parse_candidates(fetched: Fetched, source: SourceConfig, timezone: str, taken: Mapping[str, str]) -> _ParseResult:
    """Parse a document and decide each item's identity, categories and raw hash (runs in a worker).

    `taken` (slug → medium) keeps media whose names give the same slug apart.
    """
    from aggregator import identity
    from aggregator.parse import parse

    feed = parse(fetched, source, timezone)
    candidates, skipped = [], []
    media = dict(taken)
    for raw in feed.items:
        try:
            article_id = identity.article_id(raw, source.name)
        except ItemError as exc:
            skipped.append(str(exc))
            continue
        categories = _categories_for(source, raw, media)
        candidates.append(Candidate(article_id, source.name, categories, raw, dedupe.raw_hash(raw)))
    return _ParseResult(feed, tuple(candidates), tuple(skipped), _new_titles(media, taken))


def _files_by_medium(source: SourceConfig) -> bool:
    return source.categories == "auto" or source.category_from == "medium"


def _categories_for(source: SourceConfig, raw: RawItem, media: dict[str, str]) -> frozenset[str]:
    """The source's configured categories, plus the item's medium's slug (recorded in `media`) when the
    source files by medium (`categories = "auto"` or `category_from = "medium"`)."""
    configured = frozenset(source.categories) if source.categories != "auto" else frozenset()
    if not _files_by_medium(source):
        return configured
    from aggregator.categories import category_for_medium

    medium = (raw.medium or source.name).strip()
    slug = category_for_medium(medium, media)
    media.setdefault(slug, medium)
    return configured | {slug}


def _new_titles(media: Mapping[str, str], taken: Mapping[str, str]) -> dict[str, str]:
    from aggregator.categories import category_title

    return {slug: category_title(medium) for slug, medium in media.items() if slug not in taken}


def _build_items(candidates: Sequence[Candidate], source: SourceConfig, now: datetime) -> list[Item]:
    """Clean each candidate into the Item subscribers will see (runs in a worker)."""
    return [build_item(candidate, source, now) for candidate in candidates]


def build_item(candidate: Candidate, source: SourceConfig, now: datetime) -> Item:
    """identity + clean → Item: cleaned title and body, canonical link, content hash."""
    from aggregator import identity
    from aggregator.clean import clean_html, clean_text

    raw = candidate.raw
    base_url = raw.url or source.url
    title = clean_text(raw.title)
    html = clean_html(raw.html or raw.summary, base_url, source.clean)
    summary = clean_text(raw.summary) if raw.html and raw.summary else ""
    url = identity.canonical_url(raw.url) if raw.url and raw.url.lower().startswith(("http://", "https://")) else None
    return Item(
        article_id=candidate.article_id,
        title=title,
        url=url,
        html=html,
        published=raw.published,
        updated=raw.updated or raw.published or now,
        categories=candidate.categories,
        sources=frozenset({candidate.source_name}),
        content_hash=dedupe.content_hash(title, html, summary, raw.author, raw.published),
        summary=summary,
        author=raw.author,
        first_seen=now,
    )
