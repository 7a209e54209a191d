"""Read feeds.toml into a validated, immutable Config; every problem reported at once as file:line: key.

The records here are frozen pydantic models: pydantic collects all validation errors in one
pass and gives each a `loc`, which `_locate` maps back to a line of the TOML text.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

DURATION_UNITS_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(value: object) -> timedelta:
    """"90s", "15m", "2h", "1d" (or a plain number of seconds) → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("must be a duration such as \"90s\", \"15m\" or \"2h\"")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = float(match.group(1)) * DURATION_UNITS_SECONDS[match.group(2)]
    else:
        raise ValueError(f"must be a duration such as \"90s\", \"15m\" or \"2h\", not {value!r}")
    if seconds <= 0:
        raise ValueError(f"must be a positive duration, not {value!r}")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Replacement(_Strict):
    """One regex replacement applied to the raw HTML before parsing it."""

    pattern: str
    replacement: str = ""


class CleanRules(_Strict):
    """Per-source cleaning rules: a preset plus selectors and regexes (see clean/rules.py)."""

    #: "default" (generic + eastmoney), "eastmoney", "generic" or "none"
    preset: Literal["default", "eastmoney", "generic", "none"] = "default"
    #: CSS selectors whose elements are removed with their content
    remove: tuple[str, ...] = ()
    #: CSS selectors whose elements are replaced by their children
    unwrap: tuple[str, ...] = ()
    replace: tuple[Replacement, ...] = ()


class Settings(_Strict):
    """[settings]: global options."""

    #: SQLite path (relative to feeds.toml) or a postgresql:// URL; AGGREGATOR_STORE overrides it
    store: str = "store/aggregator.db"
    output_dir: Path = Path("store/feeds")
    #: public URL the feeds are served under, for rel="self" links
    base_url: str = "http://127.0.0.1:8080/"
    #: default poll interval of a source
    interval: Duration = timedelta(minutes=15)
    #: upper clamp for server-suggested delays (Cache-Control, Expires, ttl)
    max_interval: Duration = timedelta(hours=6)
    #: cap of the exponential failure backoff
    max_backoff: Duration = timedelta(hours=12)
    max_items_per_feed: int = Field(default=100, ge=1)
    user_agent: str = "aggregator/0.1 (regional news mirror; +https://github.com/aggregator)"
    timeout: Duration = timedelta(seconds=30)
    max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    #: sources fetched at once
    concurrency: int = Field(default=8, ge=1, le=256)
    #: connections per host at once, and the minimum gap between two requests to one host
    per_host_concurrency: int = Field(default=1, ge=1, le=32)
    per_host_delay: Duration | None = timedelta(seconds=1)
    allow_private_networks: bool = False
    #: default timezone for naive source times
    timezone: str = "Asia/Shanghai"
    #: HOST:PORT for `serve` and `run`
    listen: str = "127.0.0.1:8080"
    websub_hub: str | None = None


class CategoryConfig(_Strict):
    """[categories.<id>]: a published feed."""

    title: str
    description: str | None = None


class JsonFields(_Strict):
    """Where a JSON API record keeps each field (dotted paths inside a record)."""

    id: str | None = None
    title: str | None = None
    published: str | None = None
    medium: str | None = None
    url: str | None = None
    summary: str | None = None
    content: str | None = None


class SourceConfig(_Strict):
    """[[sources]]: one thing we poll."""

    name: str
    url: str
    kind: Literal["feed", "json", "html"] = "feed"
    #: category ids, or "auto" to file items under their medium's pinyin slug
    categories: tuple[str, ...] | Literal["auto"] = ()
    category_from: Literal["medium"] | None = None
    interval: Duration | None = None
    #: 5-field cron expression, instead of interval
    cron: str | None = None
    enabled: bool = True
    timezone: str | None = None
    #: charset override when the server or the document lies about it
    encoding: str | None = None
    clean: CleanRules = CleanRules()
    #: admit this one source to a private/intranet address without opening all
    allow_private_network: bool = False
    full_content: bool = False
    # kind = "json"
    preset: Literal["eastmoney"] | None = None
    items_path: str | None = None
    fields: JsonFields | None = None
    detail_url: str | None = None
    detail_field: str | None = None
    # kind = "html"
    item_selector: str | None = None
    link_selector: str | None = None
    title_selector: str | None = None
    date_selector: str | None = None
    body_selector: str | None = None
    next_page_selector: str | None = None
    max_pages: int = Field(default=1, ge=1, le=50)


class Config(_Strict):
    """The whole validated feeds.toml, with paths resolved against its folder."""

    path: Path
    settings: Settings = Settings()
    categories: dict[str, CategoryConfig] = {}
    sources: tuple[SourceConfig, ...] = ()

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def interval_of(self, source: SourceConfig) -> timedelta:
        return source.interval or self.settings.interval

    def timezone_of(self, source: SourceConfig) -> str:
        return source.timezone or self.settings.timezone
