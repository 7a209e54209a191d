"""Read feeds.toml into a validated, immutable Config; every problem reported at once as file:line: key.

The records here are frozen pydantic models: pydantic collects all validation errors in one
pass and gives each a `loc`, which `config.lines` maps back to a line of the TOML text. Rules
that span fields or sources (category references, duplicate names, kind requirements) are checked
on the raw TOML data beside pydantic, so they are reported even when a field elsewhere is invalid.
The reference of every key is docs/configuration.md.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from aggregator.config.lines import Loc, find_line, format_key, locate_keys
from aggregator.config.values import (
    STORE_URL_PREFIXES,
    check_cron,
    check_css_selector,
    check_encoding,
    check_http_url,
    check_listen,
    check_regex,
    check_replacement,
    check_store,
    check_timezone,
    check_url_template,
)
from aggregator.errors import ConfigError, ConfigProblem

DURATION_UNITS_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|[smhd])\s*$")
_CATEGORY_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# tomllib (3.11) only puts the position in its message: "Invalid value (at line 7, column 12)"
_TOML_POSITION_RE = re.compile(r"^(.*) \(at (?:line (\d+), column (\d+)|end of document)\)$")


def parse_duration(value: object) -> timedelta:
    """"90s", "15m", "2h", "1d", "500ms" (or a plain number of seconds) → timedelta."""
    found = parse_delay(value)
    if found <= timedelta(0):
        raise ValueError(f"must be a positive duration, not {value!r}")
    return found


def parse_delay(value: object) -> timedelta:
    """A duration that may be zero ("0s": no pause at all, e.g. between requests to one's own server)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = float(match.group(1)) * DURATION_UNITS_SECONDS[match.group(2)]
    else:
        raise ValueError(f"must be a duration such as \"90s\", \"15m\" or \"2h\", not {value!r}")
    if seconds < 0:
        raise ValueError(f"must be a duration of zero or more, not {value!r}")
    return timedelta(seconds=seconds)


def _with_preset_defaults(source: Mapping[str, Any]) -> dict[str, Any]:
    """A source with a `preset` is kind = "json" and files by medium (categories = "auto") unless it says
    otherwise, so name, url and preset make a whole source (issue 6)."""
    implied = dict(source)
    if "preset" in implied:
        implied.setdefault("kind", "json")
        if implied["kind"] == "json":
            implied.setdefault("categories", "auto")
    return implied


def _check_categories(value: object) -> object:
    """A list of category ids or "auto"; one message instead of one per branch of the union."""
    if value == "auto" or (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)):
        return value
    raise ValueError(f"must be a list of category ids or \"auto\", not {value!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Delay = Annotated[timedelta, BeforeValidator(parse_delay)]
HttpUrl = Annotated[str, AfterValidator(check_http_url)]
UrlTemplate = Annotated[str, AfterValidator(check_url_template)]
TimezoneName = Annotated[str, AfterValidator(check_timezone)]
EncodingName = Annotated[str, AfterValidator(check_encoding)]
CronExpression = Annotated[str, AfterValidator(check_cron)]
ListenAddress = Annotated[str, AfterValidator(check_listen)]
CssSelector = Annotated[str, AfterValidator(check_css_selector)]
RegexPattern = Annotated[str, AfterValidator(check_regex)]
StoreLocation = Annotated[str, AfterValidator(check_store)]
SimilarMode = Literal["keep", "collapse"]
# TOML has real integers and booleans: "5" or 1 where they are expected is a mistake, not a value
StrictInt = Annotated[int, Field(strict=True)]
StrictBool = Annotated[bool, Field(strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Replacement(_Strict):
    """One regex replacement applied to the raw HTML before parsing it."""

    # whitespace is meaningful here: the legacy mirror removed the "　　" (U+3000) paragraph indent
    model_config = ConfigDict(str_strip_whitespace=False)

    pattern: RegexPattern
    replacement: str = ""

    @field_validator("replacement")
    @classmethod
    def _check_template(cls, value: str, info: ValidationInfo) -> str:
        # fields are validated in order: `pattern` is in info.data only when it is a valid regex
        pattern = info.data.get("pattern")
        return value if pattern is None else check_replacement(value, pattern)


class CleanRules(_Strict):
    """Per-source cleaning rules: a preset plus selectors and regexes (see clean/rules.py)."""

    #: "default" (generic + eastmoney), "eastmoney", "generic" or "none"
    preset: Literal["default", "eastmoney", "generic", "none"] = "default"
    #: CSS selectors whose elements are removed with their content
    remove: tuple[CssSelector, ...] = ()
    #: CSS selectors whose elements are replaced by their children
    unwrap: tuple[CssSelector, ...] = ()
    replace: tuple[Replacement, ...] = ()


class Settings(_Strict):
    """[settings]: global options."""

    #: SQLite path (relative to feeds.toml) or a postgresql:// URL; AGGREGATOR_STORE overrides it
    store: StoreLocation = "store/aggregator.db"
    output_dir: Path = Path("store/feeds")
    #: public URL the feeds are served under, for rel="self" links
    base_url: HttpUrl = "http://127.0.0.1:8080/"
    #: default poll interval of a source
    interval: Duration = timedelta(minutes=15)
    #: upper clamp for server-suggested delays (Cache-Control, Expires, ttl)
    max_interval: Duration = timedelta(hours=6)
    #: cap of the exponential failure backoff
    max_backoff: Duration = timedelta(hours=12)
    max_items_per_feed: StrictInt = Field(default=100, ge=1)
    user_agent: str = "aggregator/0.1 (regional news mirror; +https://github.com/aggregator)"
    timeout: Duration = timedelta(seconds=30)
    max_response_bytes: StrictInt = Field(default=10 * 1024 * 1024, ge=1024)
    max_redirects: StrictInt = Field(default=5, ge=0, le=20)
    #: wall-clock time one document may take to parse or clean in its worker process; past it the
    #: worker is killed and replaced and the source fails with a clear error (aggregator/workers.py)
    document_budget: Duration = timedelta(seconds=10)
    #: sources fetched at once
    concurrency: StrictInt = Field(default=8, ge=1, le=256)
    #: connections per host at once, and the minimum gap between two requests to one host
    per_host_concurrency: StrictInt = Field(default=1, ge=1, le=32)
    per_host_delay: Delay | None = timedelta(seconds=1)
    allow_private_networks: StrictBool = False
    #: default timezone for naive source times
    timezone: TimezoneName = "Asia/Shanghai"
    #: HOST:PORT for `serve` and `run`
    listen: ListenAddress = "127.0.0.1:8080"
    websub_hub: HttpUrl | None = None
    #: where a feed entry's rel="alternate" points: the mirror's article page (the original is then
    #: rel="via") or the original article (the article page is then rel="via")
    entry_link: Literal["mirror", "original"] = "mirror"
    #: items whose listing date is older than this leave feeds, pages and search; None keeps forever
    retention: Duration | None = None
    #: items per category page of the website
    page_size: StrictInt = Field(default=50, ge=1, le=1000)
    #: same-story detection across article ids (issue 14; docs/configuration.md, "Same story, many papers")
    similar_detection: StrictBool = True
    #: estimated similarity (0-1) at which two items are one story; chosen on tests/data/similar/
    similar_threshold: Annotated[float, Field(strict=True, gt=0, le=1)] = 0.5
    #: a new item is compared with the items first seen this long before it
    similar_window: Duration = timedelta(days=7)
    #: all.atom: one entry per story ("collapse") or every item ("keep")
    similar: SimilarMode = "collapse"
    #: with a postgresql:// store: how long a worker's claim on a source (and on a host slot, and the
    #: publisher's role) lasts without a heartbeat; a killed worker's sources are polled again after it
    lease: Duration = timedelta(seconds=30)


class CategoryConfig(_Strict):
    """[categories.<id>]: a published feed."""

    title: str
    description: str | None = None
    #: one entry per story ("collapse") or every item, marked with its story ("keep")
    similar: SimilarMode = "keep"


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
    url: HttpUrl
    kind: Literal["feed", "json", "html"] = "feed"
    #: category ids, or "auto" to file items under their medium's pinyin slug
    categories: Annotated[tuple[str, ...] | Literal["auto"], BeforeValidator(_check_categories)] = ()
    category_from: Literal["medium"] | None = None
    interval: Duration | None = None
    #: 5-field cron expression, instead of interval
    cron: CronExpression | None = None
    enabled: StrictBool = True
    timezone: TimezoneName | None = None
    #: charset override when the server or the document lies about it
    encoding: EncodingName | None = None
    clean: CleanRules = CleanRules()
    #: admit this one source to a private/intranet address without opening all
    allow_private_network: StrictBool = False
    full_content: StrictBool = False
    # kind = "json"
    preset: Literal["eastmoney"] | None = None
    items_path: str | None = None
    fields: JsonFields | None = None
    detail_url: UrlTemplate | None = None
    detail_field: str | None = None
    # kind = "html"
    item_selector: CssSelector | None = None
    link_selector: CssSelector | None = None
    title_selector: CssSelector | None = None
    date_selector: CssSelector | None = None
    body_selector: CssSelector | None = None
    next_page_selector: CssSelector | None = None
    max_pages: StrictInt = Field(default=1, ge=1, le=50)

    @model_validator(mode="before")
    @classmethod
    def _imply_preset_defaults(cls, data: object) -> object:
        return _with_preset_defaults(data) if isinstance(data, Mapping) else data


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


#: keys that only mean something for one source kind; elsewhere they would be silently ignored
KIND_ONLY_KEYS: Mapping[str, str] = {
    **dict.fromkeys(("preset", "items_path", "fields", "detail_url", "detail_field"), "json"),
    **dict.fromkeys(("item_selector", "link_selector", "title_selector", "date_selector",
                     "body_selector", "next_page_selector", "max_pages"), "html"),
}
#: the record behind each table name, to suggest the key meant when an unknown one is given
_TABLE_MODELS: Mapping[str, type[BaseModel]] = {
    "settings": Settings, "sources": SourceConfig, "clean": CleanRules, "replace": Replacement,
    "fields": JsonFields,
}


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and parse the file; `env` defaults to os.environ (for AGGREGATOR_STORE)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read the file: {e.strerror or e}")]) from e
    except UnicodeDecodeError as e:
        message = f"must be UTF-8 text (TOML 1.0), byte {e.start} is not"
        raise ConfigError([ConfigProblem(str(path), None, "", message)]) from e
    return parse_config(text, path, os.environ if env is None else env)


def parse_config(text: str, path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Validate a feeds.toml text; problems name `path` as given. No I/O: `env` None means no overrides."""
    shown = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([_syntax_problem(shown, text, e)]) from e
    env = env or {}
    found: list[tuple[Loc, str]] = [(("path",), "unknown key")] if "path" in data else []
    found += _check_references(data)
    config: Config | None = None
    try:
        config = Config.model_validate({**data, "path": Path(os.path.abspath(path))})
    except ValidationError as e:
        found += [(tuple(error["loc"]), _describe(error)) for error in e.errors(include_url=False)]
    problems = _locate(found, text, shown, data)
    store_override = env.get("AGGREGATOR_STORE") or None
    if store_override is not None:
        try:
            check_store(store_override)
        except ValueError as e:
            problems.append(ConfigProblem("environment", None, "AGGREGATOR_STORE", str(e)))
    if problems or config is None:
        raise ConfigError(problems)
    return _resolve_paths(config, store_override)


def _syntax_problem(shown: str, text: str, error: tomllib.TOMLDecodeError) -> ConfigProblem:
    match = _TOML_POSITION_RE.match(str(error))
    if match is None:
        return ConfigProblem(shown, None, "syntax", str(error))
    if match.group(2) is None:  # "at end of document"
        lines = text.split("\n")
        return ConfigProblem(shown, len(lines), "syntax", match.group(1), column=len(lines[-1]) + 1)
    return ConfigProblem(shown, int(match.group(2)), "syntax", match.group(1), column=int(match.group(3)))


def _check_references(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Rules across fields and sources, on the raw TOML data; malformed parts are pydantic's to report."""
    found: list[tuple[Loc, str]] = []
    categories = data.get("categories")
    defined = set(categories) if isinstance(categories, dict) else set()
    for category in sorted(defined):
        if not _CATEGORY_ID_RE.match(category):
            found.append((("categories", category),
                          "category id must be lowercase ASCII letters, digits, '-' or '_' (it names the feed file)"))
    sources = data.get("sources")
    first_index: dict[str, int] = {}
    for index, source in enumerate(sources if isinstance(sources, list) else ()):
        if not isinstance(source, dict):
            continue
        source = _with_preset_defaults(source)  # as SourceConfig reads it
        loc: Loc = ("sources", index)
        name = source.get("name")
        if isinstance(name, str) and name.strip() in first_index:
            first = first_index[name.strip()]
            found.append((loc + ("name",), f"duplicate source name {name.strip()!r} (first used by sources[{first}])"))
        elif isinstance(name, str):
            first_index[name.strip()] = index
        found += _check_source_categories(source, loc, defined)
        if "interval" in source and "cron" in source:
            found.append((loc + ("cron",), "set either interval or cron, not both"))
        found += _check_kind(source, loc)
    return found


def _check_source_categories(source: Mapping[str, Any], loc: Loc, defined: set[str]) -> list[tuple[Loc, str]]:
    categories = source.get("categories", [])
    if not isinstance(categories, list):
        return []
    found: list[tuple[Loc, str]] = [
        (loc + ("categories", position),
         f"unknown category {category!r} (define [categories.{category}] or use categories = \"auto\")")
        for position, category in enumerate(categories)
        if isinstance(category, str) and category.strip() not in defined
    ]
    if not categories and source.get("category_from") != "medium":
        found.append((loc + ("categories",), "must name at least one category or be \"auto\""))
    return found


def _check_kind(source: Mapping[str, Any], loc: Loc) -> list[tuple[Loc, str]]:
    kind = source.get("kind", "feed")
    found = [(loc + (key,), f"only applies to kind = \"{only}\"")
             for key, only in KIND_ONLY_KEYS.items() if key in source and kind != only]
    fields = source.get("fields")
    if kind == "json" and "preset" not in source and not (
            "items_path" in source and isinstance(fields, dict) and "id" in fields):
        found.append((loc + ("preset",), 'kind = "json" needs preset = "eastmoney", or both items_path and fields.id'))
    if kind == "html" and "item_selector" not in source:
        found.append((loc + ("item_selector",), "kind = \"html\" needs item_selector"))
    return found


def _describe(error: ErrorDetails) -> str:
    """A pydantic error → our phrasing: "must be …, not <value>" in TOML terms."""
    kind, value = error["type"], error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key" + _suggest(tuple(error["loc"]))
    if kind == "value_error":
        return error["msg"].removeprefix("Value error, ")
    shown = "a table" if isinstance(value, dict) else "an array" if isinstance(value, list) else repr(value)
    if kind in ("model_type", "dict_type"):
        return f"must be a table, not {shown}"
    if kind in ("tuple_type", "list_type"):
        return f"must be an array, not {shown}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, not {shown}"
    if kind == "literal_error":
        return f"must be {error.get('ctx', {}).get('expected')}, not {shown}"
    if kind == "path_type":
        return f"must be a path, not {shown}"
    # "Input should be a valid integer, unable to parse …" → "must be a valid integer"
    return "must be " + error["msg"].removeprefix("Input should be ").split(",")[0] + f", not {shown}"


def _suggest(loc: Loc) -> str:
    parent = [part for part in loc[:-1] if isinstance(part, str)]
    if parent[:1] == ["categories"] and len(parent) == 2:
        model: type[BaseModel] = CategoryConfig
    elif parent:
        model = _TABLE_MODELS.get(parent[-1], Config)
    else:
        model = Config
    known = [name for name in model.model_fields if not (model is Config and name == "path")]
    import difflib  # only for a config with an unknown key

    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _locate(found: list[tuple[Loc, str]], text: str, shown: str, data: Mapping[str, Any]) -> list[ConfigProblem]:
    """(loc, message) pairs → problems with line and TOML key, in file order, each once."""
    lines = locate_keys(text) if found else {}
    sources = data.get("sources")
    names = {index: source["name"].strip() for index, source in enumerate(sources if isinstance(sources, list) else ())
             if isinstance(source, dict) and isinstance(source.get("name"), str) and source["name"].strip()}
    problems = {ConfigProblem(shown, find_line(lines, loc), format_key(loc, names), message) for loc, message in found}
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0, p.key, p.message))


def _resolve_paths(config: Config, store_override: str | None) -> Config:
    """Relative store and output_dir → absolute against the config's folder (AGGREGATOR_STORE: the CWD)."""
    folder = config.path.parent
    settings = config.settings
    if store_override is not None:
        store = _absolute_store(store_override, Path.cwd())
    else:
        store = _absolute_store(settings.store, folder)
    output_dir = Path(os.path.abspath(folder / settings.output_dir.expanduser()))
    return config.model_copy(update={"settings": settings.model_copy(update={"store": store, "output_dir": output_dir})})


def _absolute_store(store: str, folder: Path) -> str:
    if store.startswith(STORE_URL_PREFIXES):
        return store
    return os.path.abspath(folder / Path(store).expanduser())
