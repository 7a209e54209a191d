"""A Fetcher that answers from a table instead of the network, for update tests about decisions.

Like reader's tests/fakeparser.py: the test says what each URL answers (a body, a 304, a permanent
redirect, an error) and reads back what was asked (which URL, with which validators). Tests about
fetching itself (caps, redirects, address policy, politeness) use the real HttpFetcher against
tests/fixture_server.py instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aggregator.config.load import SourceConfig
from aggregator.errors import FetchError
from aggregator.models import Fetched, FetchResult, NotModified, SourceState

Answer = Fetched | NotModified | Exception


@dataclass(frozen=True, slots=True)
class FetchCall:
    """One request the updater made."""

    source: str
    url: str
    etag: str | None
    last_modified: str | None


@dataclass
class FakeFetcher:
    """`answers` maps a URL to what fetching it gives; a URL with no answer fails like a 404."""

    answers: dict[str, Answer] = field(default_factory=dict)
    calls: list[FetchCall] = field(default_factory=list)
    fetched_at: datetime = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)

    def serve(self, url: str, body: bytes, headers: Mapping[str, str] | None = None, *,
              moved_to: str | None = None) -> None:
        """A 200 with `body`; with `moved_to`, reached through a permanent redirect from `url`."""
        final = moved_to or url
        self.answers[url] = Fetched(url, final, 200, dict(headers or {}), body, self.fetched_at,
                                    permanent_redirect=moved_to)

    def not_modified(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        self.answers[url] = NotModified(url, dict(headers or {}), self.fetched_at)

    def fail(self, url: str, status: int, *, retry_after_seconds: float | None = None) -> None:
        """An HTTP error as the real fetcher reports it: FetchError with the status."""
        self.answers[url] = FetchError("fake", url, f"fetch: HTTP {status}", status, retry_after_seconds)

    def urls(self) -> list[str]:
        return [call.url for call in self.calls]

    async def fetch_source(self, source: SourceConfig, url: str, state: SourceState) -> FetchResult:
        self.calls.append(FetchCall(source.name, url, state.etag, state.last_modified))
        return self._answer(url)

    async def fetch_url(self, source: SourceConfig, url: str) -> Fetched:
        self.calls.append(FetchCall(source.name, url, None, None))
        answer = self._answer(url)
        if isinstance(answer, NotModified):
            raise AssertionError(f"fake fetcher: a plain GET of {url} cannot be answered with 304")
        return answer

    def _answer(self, url: str) -> FetchResult:
        answer = self.answers.get(url) or FetchError("fake", url, "fetch: HTTP 404", 404)
        if isinstance(answer, Exception):
            raise answer
        return answer
