"""Take one source through fetch → parse → items → dedupe → store; wiring only, it decides nothing itself.

The decisions live in the pure modules: schedule (the source's state machine: what to fetch, the new
state and the outcome), items (identity, categories, completion, cleaning), dedupe (what to write).
This module wires them and owns the one broad `except` around a source: a failing source is recorded
as data (ErrorInfo, failures, backoff) and never stops the others (an item's failure is the item's:
aggregator/isolation.py). A poll's items, their stories (issue 14) and the source state are stored in one
transaction. CPU-heavy steps (parse; clean and sign, in one call) run in an optional pool of worker processes
(aggregator/workers.py) so a poll uses every core and one runaway or crashing document fails only its
source; storage is read and written only here, in the event loop's thread, so writes are never concurrent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aggregator import items, schedule
from aggregator.config.load import CleanRules, Config, SourceConfig
from aggregator.errors import SourceError, StorageError
from aggregator.fetch.client import Fetcher
from aggregator.isolation import log_skipped
from aggregator.models import (
    Candidate, Fetched, Item, ItemChange, NotModified, RawItem, SkippedItem, SourceState, UpdateOutcome,
)

if TYPE_CHECKING:  # SQLAlchemy (storage.sql) and multiprocessing (workers) load when a pass needs them
    from aggregator.similar.signature import Signature
    from aggregator.storage import Storage, StoryRequest
    from aggregator.workers import WorkerPool

log = logging.getLogger("aggregator.update")

#: sources in progress per request slot: while some are parsed or cleaned, others are fetched
PIPELINE_DEPTH = 2

T = TypeVar("T")
#: a cron source's next fire time at or after a moment (None: never again); None for an interval source
CronOf = Callable[[SourceConfig], Callable[[datetime], datetime | None] | None]
#: the plan of a poll that stored no items (a 304, a failure)
_NOTHING_STORED = items.StorePlan((), 0)


@dataclass(frozen=True, slots=True)
class _Stories:
    """What grouping a poll's new items into stories did (issue 14)."""

    #: new items that joined an earlier item's story
    merged: int
    #: categories of the stories that grew: their feeds show the new member
    categories: frozenset[str]



def utc_now() -> datetime:
    return datetime.now(UTC)


def _no_cron(source: SourceConfig) -> None:
    """`poll` follows every source's interval: cron times are the daemon's (it holds the triggers)."""
    return


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What the worker returns from parsing one document: what the items and the next poll need."""

    found: items.Candidates
    #: problems the parser tolerated, logged
    warnings: tuple[str, ...]
    #: RSS <ttl>, a hint for the next poll
    ttl_minutes: int | None


@dataclass(frozen=True, slots=True)
class _Poll:
    """One poll under way: the source, its state before, and when it started."""

    source: SourceConfig
    state: SourceState
    now: datetime
    started: float


class Updater:
    """Polls sources and stores what changed; one instance per `poll` run or daemon.

    `cron_of` gives a cron source's fire times (the daemon's triggers), so its stored next poll is
    its next cron time; `poll` leaves it out and every source follows its interval.
    """

    def __init__(
        self,
        config: Config,
        storage: Storage,
        fetcher: Fetcher,
        *,
        workers: WorkerPool | None = None,
        clock: Callable[[], datetime] = utc_now,
        cron_of: CronOf = _no_cron,
    ) -> None:
        self.config = config
        self.storage = storage
        self.fetcher = fetcher
        self.workers = workers
        self.clock = clock
        self.cron_of = cron_of
        self._random = random.Random()
        #: not-modified states of the running update_sources pass, saved together when it ends
        self._unchanged_states: list[SourceState] | None = None

    async def update_sources(
        self,
        sources: Iterable[SourceConfig],
        on_outcome: Callable[[UpdateOutcome], None] | None = None,
        states: Mapping[str, SourceState] | None = None,
    ) -> list[UpdateOutcome]:
        """Poll `sources` concurrently: `settings.concurrency` requests at a time (the fetcher's
        limit), and up to PIPELINE_DEPTH times as many sources in progress, so a document being
        parsed or cleaned in the pool does not hold back a request; memory stays bounded by the
        documents in progress, never by the number of sources.

        States are read in one statement (or given, as read by the caller); the sources that answered
        304 have theirs written in one statement when the pass ends (a source with news saves its state
        with its items).
        """
        if states is None:
            states = self.storage.get_source_states()
        bound = asyncio.Semaphore(PIPELINE_DEPTH * self.config.settings.concurrency)

        async def one(source: SourceConfig) -> UpdateOutcome:
            async with bound:
                outcome = await self._update(source, states.get(source.name))
            if on_outcome is not None:
                on_outcome(outcome)
            return outcome

        self._unchanged_states = []
        polls = [asyncio.ensure_future(one(source)) for source in sources]
        try:
            return list(await asyncio.gather(*polls))
        except StorageError:
            # the store failed: the other polls fail on it too; stop them here, so no task is left
            # to die unobserved at the event loop's shutdown (a traceback instead of one message)
            for poll in polls:
                poll.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
            raise
        finally:
            unchanged, self._unchanged_states = self._unchanged_states, None
            self.storage.save_source_states(unchanged)

    async def update_source(self, source: SourceConfig) -> UpdateOutcome:
        """Poll one source; never raises for a source failure (it is recorded and backed off)."""
        return await self._update(source, self.storage.get_source_state(source.name))

    async def _update(self, source: SourceConfig, stored: SourceState | None) -> UpdateOutcome:
        poll = _Poll(source, schedule.state_for(source.name, source.url, stored), self.clock(), time.monotonic())
        url = schedule.url_to_poll(poll.state, source.url)
        if url is None:
            return UpdateOutcome(source.name, "retired", next_poll_at=None)
        fetch_seconds = 0.0
        try:
            result = await self.fetcher.fetch_source(source, url, poll.state)
            fetch_seconds = time.monotonic() - poll.started
            if isinstance(result, NotModified):
                transition = schedule.after_response(poll.state, source.url, result, poll.now, self._timing(source))
                if self._unchanged_states is not None:
                    self._unchanged_states.append(transition.state)
                else:
                    self.storage.save_source_state(transition.state)
                return _report(poll, transition, fetch_seconds)
            return await self._store_fetched(poll, result, fetch_seconds)
        except SourceError as exc:
            return self._record_failure(poll, exc, exc.stage, fetch_seconds)
        except StorageError:
            raise  # the store itself failed (connection lost, disk full): no source is to blame, the pass stops
        except Exception as exc:  # a bug on one odd document must not stop the batch; logged with traceback
            log.exception("update: source=%s unexpected error", source.name)
            return self._record_failure(poll, exc, "update", fetch_seconds)

    async def _store_fetched(self, poll: _Poll, fetched: Fetched, fetch_seconds: float) -> UpdateOutcome:
        source = poll.source
        parsed = await self._parse_pages(source, fetched)
        for warning in parsed.warnings:
            log.warning("parse: source=%s %s", source.name, warning)
        skipped = list(parsed.found.skipped)
        signatures: dict[str, Signature] = {}
        prepare = functools.partial(self._prepare, source, poll.now, skipped, signatures)
        plan = await items.plan_writes(self.storage, parsed.found.candidates, poll.now, prepare)
        transition = schedule.after_response(
            poll.state, source.url, fetched, poll.now, self._timing(source), ttl_minutes=parsed.ttl_minutes,
            inserted=plan.count("insert"), updated=plan.count("update"),
        )
        state = transition.state.replace(skipped_items=_count_reasons(skipped))
        applied = self.storage.apply_update(
            plan.writes, state, parsed.found.new_category_titles,
            stories=self._story_request(plan.writes, signatures, poll.now),
        )
        if applied.refused:  # the store refused a row (a NUL in a URL on PostgreSQL): the item's failure only
            skipped += [SkippedItem("storage", r.change.item.article_id, r.reason) for r in applied.refused]
            self.storage.save_source_state(state.replace(skipped_items=_count_reasons(skipped)))
        log_skipped(source.name, skipped)
        plan = plan.without([r.change for r in applied.refused], len(skipped) - len(parsed.found.skipped))
        merges = [assignment for assignment in applied.stories if assignment.is_merge]
        stories = _Stories(len(merges), frozenset(category for merge in merges for category in merge.story_categories))
        return _report(poll, transition, fetch_seconds, plan=plan, skipped=len(skipped),
                       bytes_fetched=len(fetched.body), stories=stories)

    def _story_request(
        self, changes: Sequence[ItemChange], signatures: Mapping[str, Signature], now: datetime
    ) -> StoryRequest | None:
        """The new items to place in stories (issue 14), in the transaction that stores them. The stories
        that grow are reported: their entries list the new member, so their categories are republished."""
        new_items = [change.item for change in changes if change.action == "insert"]
        if not new_items or not signatures:
            return None
        from aggregator.similar.detect import story_request

        return story_request(new_items, signatures, self.config.settings, now)

    async def _parse_pages(self, source: SourceConfig, first: Fetched) -> _Parsed:
        """Parse the fetched document, and for paginated html sources the further list pages too."""
        pages = [first]
        if source.kind == "html" and source.max_pages > 1:
            from aggregator.enrich import fetch_list_pages

            pages += await fetch_list_pages(self.fetcher, source, first)
        taken = self._taken_categories() if items.files_by_medium(source) else {}
        timezone = self.config.timezone_of(source)
        results = [await self._run(source, _parse_candidates, page, source, timezone, taken) for page in pages]
        found = items.Candidates.merge([r.found for r in results])
        return _Parsed(found, results[0].warnings, results[0].ttl_minutes)

    def _taken_categories(self) -> dict[str, str]:
        """slug → medium of every category already in use (feeds.toml titles and learnt ones)."""
        from aggregator.categories import media_by_slug

        titles = {**self.storage.category_titles(), **{k: c.title for k, c in self.config.categories.items()}}
        return media_by_slug(titles)

    async def _prepare(
        self, source: SourceConfig, now: datetime, skipped: list[SkippedItem], signatures: dict[str, Signature],
        candidates: Sequence[Candidate],
    ) -> list[tuple[Candidate, Item]]:
        """Complete the new or changed candidates' bodies (detail endpoints, article pages), then clean them and,
        with same-story detection on, sign them in the same worker call (into `signatures`); the items that
        fail on the way are added to `skipped`."""
        if items.needs_completion(source):
            from aggregator.enrich import complete_items

            raws = await complete_items(self.fetcher, source, [c.raw for c in candidates])
            skipped += [raw for raw in raws if isinstance(raw, SkippedItem)]
            candidates = [items.completed(c, raw) for c, raw in zip(candidates, raws, strict=True)
                          if isinstance(raw, RawItem)]
        sign = self.config.settings.similar_detection
        built = await self._run(source, _build_items, tuple(candidates), source.url, source.clean, now, sign)
        skipped += [item for item in built.items if isinstance(item, SkippedItem)]
        signatures.update(built.signatures)
        return [(c, item) for c, item in zip(candidates, built.items, strict=True) if isinstance(item, Item)]

    def _record_failure(self, poll: _Poll, exc: Exception, stage: str, fetch_seconds: float) -> UpdateOutcome:
        transition = schedule.after_failure(
            poll.state, poll.source.url, exc, stage, poll.now, self._timing(poll.source), self._random.random()
        )
        self.storage.save_source_state(transition.state)
        return _report(poll, transition, fetch_seconds)

    def _timing(self, source: SourceConfig) -> schedule.PollTiming:
        settings = self.config.settings
        return schedule.PollTiming(
            self.config.interval_of(source), settings.max_interval, settings.max_backoff, self.cron_of(source)
        )

    async def _run(self, source: SourceConfig, function: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound work for `source` in a worker process when there is a pool, inline otherwise."""
        if self.workers is None:
            return function(*args)
        return await self.workers.run(source.name, function, *args)


def _report(
    poll: _Poll, transition: schedule.Transition, fetch_seconds: float, *, plan: items.StorePlan = _NOTHING_STORED,
    skipped: int = 0, bytes_fetched: int = 0, stories: _Stories | None = None,
) -> UpdateOutcome:
    """The outcome of a recorded poll, logged."""
    inserted, updated = plan.count("insert"), plan.count("update")
    outcome = UpdateOutcome(
        poll.source.name, transition.status, inserted=inserted, updated=updated,
        unchanged=plan.articles - inserted - updated, skipped_items=skipped,
        error=transition.error, next_poll_at=transition.state.next_poll_at,
        duration_seconds=time.monotonic() - poll.started, fetch_seconds=fetch_seconds,
        http_status=transition.state.last_status, bytes_fetched=bytes_fetched,
        changed_categories=plan.changed_categories() | (stories.categories if stories else frozenset()),
        merged=stories.merged if stories else 0,
    )
    _log_outcome(outcome)
    return outcome


def _count_reasons(skipped: Sequence[SkippedItem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in skipped:
        counts[item.reason] = counts.get(item.reason, 0) + 1
    return counts


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


@dataclass(frozen=True, slots=True)
class _Built:
    """What the worker returns from cleaning a batch of candidates."""

    #: one per candidate, in order
    items: list[Item | SkippedItem]
    #: article_id → signature of each built item, when same-story detection is on (issue 14)
    signatures: dict[str, Signature]


def _build_items(
    candidates: Sequence[Candidate], base_url: str, rules: CleanRules, now: datetime, sign: bool
) -> _Built:
    """Clean candidates into items and sign them (runs in a worker): one round trip to the pool, not two."""
    built = items.build_items(candidates, base_url, rules, now)
    if not sign:
        return _Built(built, {})
    from aggregator.similar.detect import sign_items

    return _Built(built, sign_items([item for item in built if isinstance(item, Item)]))


def _parse_candidates(fetched: Fetched, source: SourceConfig, timezone: str, taken: Mapping[str, str]) -> _Parsed:
    """Parse a document and decide each item's identity, categories and raw hash (runs in a worker)."""
    from aggregator.parse import parse

    feed = parse(fetched, source, timezone)
    return _Parsed(items.find_candidates(feed.items, source, taken), feed.warnings, feed.ttl_minutes)
