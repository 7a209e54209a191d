"""isolation: an item that fails on its way to the store is skipped with a reason; the rest of its source is stored.

End to end through update.Updater: the real fetcher against the loopback server, real storage on
both backends. Each hostile record sits among healthy ones.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.config.load import Config, SourceConfig, parse_config
from aggregator.fetch.client import HttpFetcher
from aggregator.models import Fetched, FetchResult, RawItem, SourceState, UpdateOutcome
from aggregator.ops.status import format_status, status_rows
from aggregator.storage import Storage
from aggregator.update import Updater
from tests.fixture_server import FixtureServer, Route

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
JSON_TYPE = "application/json; charset=utf-8"


class _DetailCrash:
    """The real fetcher, except that one detail URL raises what no code path expects (a bug's stand-in)."""

    def __init__(self, fetcher: HttpFetcher, crash_url: str) -> None:
        self._fetcher = fetcher
        self._crash_url = crash_url

    async def fetch_source(self, source: SourceConfig, url: str, state: SourceState) -> FetchResult:
        return await self._fetcher.fetch_source(source, url, state)

    async def fetch_url(self, source: SourceConfig, url: str) -> Fetched:
        if url == self._crash_url:
            raise RuntimeError("unforeseen")
        return await self._fetcher.fetch_url(source, url)


def _config(server: FixtureServer, tmp_path: Path) -> Config:
    text = "\n".join([
        "[settings]", "allow_private_networks = true", 'per_host_delay = "1ms"', "per_host_concurrency = 4",
        'timeout = "3s"', "", "[categories.a]", 'title = "A"', "",
        "[[sources]]", 'name = "api"', 'kind = "json"', f'url = "{server.url("/list")}"', 'categories = ["a"]',
        'items_path = "items"', f'detail_url = "{server.url("/detail")}?id={{id}}"', 'detail_field = "body"',
        "[sources.fields]", 'id = "id"', 'title = "title"', 'url = "url"', 'summary = "digest"',
    ])
    return parse_config(text, tmp_path / "feeds.toml", {})


def _poll(config: Config, storage: Storage, crash_url: str) -> UpdateOutcome:
    async def run() -> UpdateOutcome:
        async with HttpFetcher(config.settings) as fetcher:
            updater = Updater(config, storage, _DetailCrash(fetcher, crash_url), clock=lambda: NOW)
            return await updater.update_source(config.sources[0])

    return asyncio.run(run())


def _record(number: int, **fields: str) -> dict[str, str]:
    return {"id": f"NW2022012400000000{number:02d}", "title": f"标题 {number}", "url": f"http://127.0.0.1/a/{number}",
            "digest": f"摘要 {number}", **fields}


def test_each_hostile_item_is_skipped_with_its_reason_and_the_rest_of_the_source_is_stored(
    feed_server: FixtureServer, storage: Storage, store_url: str, tmp_path: Path
) -> None:
    records = [
        _record(1),
        _record(2, url="http://[oops/"),                      # link that cannot be parsed
        {"title": "标题 3", "url": "http://127.0.0.1/a/\u00003"},  # its id would be its link, with a NUL
        _record(4, url="http://127.0.0.1/a/\u00004"),         # a NUL PostgreSQL cannot store in a URL
        _record(5),                                           # its detail request crashes
        _record(6),                                           # detail: 10,000-deep JSON
        _record(7),                                           # detail: a 5,000-digit number
    ]
    feed_server.routes["/list"] = Route(json.dumps({"items": records}).encode(), content_type=JSON_TYPE)
    for number in (1, 2, 4):
        feed_server.routes[f"/detail?id=NW2022012400000000{number:02d}"] = Route(
            json.dumps({"body": f"<p>正文 {number}</p>"}).encode(), content_type=JSON_TYPE)
    feed_server.routes["/detail?id=NW202201240000000006"] = Route(b'{"body": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
                                                                   content_type=JSON_TYPE)
    feed_server.routes["/detail?id=NW202201240000000007"] = Route(b'{"body": ' + b"7" * 5000 + b"}",
                                                                   content_type=JSON_TYPE)
    config = _config(feed_server, tmp_path)
    outcome = _poll(config, storage, feed_server.url("/detail?id=NW202201240000000005"))

    on_postgresql = store_url.startswith("postgresql")
    expected_reasons = {"url": 1, "identity": 1, "detail": 1, **({"storage": 1} if on_postgresql else {})}
    assert outcome.error is None
    assert outcome.skipped_items == sum(expected_reasons.values())
    stored = {item.article_id for item in storage.list_items(None, limit=100)}
    assert stored == {f"NW2022012400000000{n:02d}" for n in (1, 6, 7, *(() if on_postgresql else (4,)))}
    first = storage.get_item("NW202201240000000001")
    assert first is not None and first.html == "<p>正文 1</p>"
    unreadable_detail = storage.get_item("NW202201240000000006")
    assert unreadable_detail is not None and "摘要 6" in unreadable_detail.html  # kept its list summary

    state = storage.get_source_state("api")
    assert state is not None and dict(state.skipped_items) == expected_reasons
    [row] = json.loads(format_status(status_rows(config, storage.get_source_states(), {}, NOW), as_json=True))
    assert (row["skipped_items"], row["skipped_reasons"]) == (sum(expected_reasons.values()), expected_reasons)
    assert set(storage.owed_categories()) == {"a"}


def test_a_source_without_skips_reports_none(feed_server: FixtureServer, storage: Storage, tmp_path: Path) -> None:
    feed_server.routes["/list"] = Route(json.dumps({"items": [_record(1)]}).encode(), content_type=JSON_TYPE)
    feed_server.routes["/detail?id=NW202201240000000001"] = Route(b'{"body": "<p>x</p>"}', content_type=JSON_TYPE)
    outcome = _poll(_config(feed_server, tmp_path), storage, "")
    state = storage.get_source_state("api")
    assert (outcome.inserted, outcome.skipped_items) == (1, 0)
    assert state is not None and dict(state.skipped_items) == {}


@pytest.mark.parametrize("step", ["identity", "url", "clean"])
def test_the_boundary_turns_any_exception_into_a_skip_naming_the_item(step: str) -> None:
    from aggregator.isolation import item_or_skip

    def explode() -> int:
        raise RecursionError("maximum recursion depth exceeded")

    raw = RawItem(url="http://127.0.0.1/a/1")
    skipped = item_or_skip(step, explode, raw)  # type: ignore[arg-type]
    assert (skipped.reason, skipped.item) == (step, "http://127.0.0.1/a/1")  # type: ignore[union-attr]
    assert skipped.message == f"{step}: RecursionError: maximum recursion depth exceeded"  # type: ignore[union-attr]
    assert item_or_skip(step, lambda: 5, raw) == 5  # type: ignore[arg-type]
