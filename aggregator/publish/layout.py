"""The published file layout: which file under output_dir holds which feed, and the URL it is served at.

No business logic. One table shared by `publish` (which writes the files) and `serve` (which maps
request paths back to them), so an nginx in front can serve the same tree with `alias` +
`gzip_static` (docs/subscribing.md):

    /                                 index.html
    /feeds.opml                       feeds.opml
    /feeds/<name>.atom                <name>.atom            (+ <name>.atom.gz)
    /feeds/<name>.json                <name>.json            (+ <name>.json.gz)
    /feeds/archive/<name>/<n>.atom    archive/<name>/<n>.atom (+ .gz), n = 1 is the oldest page

`<name>` is a category id or `all`. Files whose names start with a dot are bookkeeping
(WebSub retries, archive seals) and are never served.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from aggregator.config.load import Config

#: the feed of every category together; no category may take this id
ALL_FEED = "all"

#: category ids we publish: they become file names and URL segments verbatim, so nothing that
#: needs escaping, no dots (no "..", no hidden files) and no separators of any OS
FEED_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
_FEED_NAME_RE = re.compile(FEED_NAME_PATTERN)

INDEX_FILE = PurePosixPath("index.html")
OPML_FILE = PurePosixPath("feeds.opml")
#: retry list of WebSub pings that failed (aggregator/publish/websub.py)
PENDING_PINGS_FILE = PurePosixPath(".websub-pending.json")
ATOM_SUFFIX = ".atom"
GZIP_SUFFIX = ".gz"


def is_feed_name(name: str) -> bool:
    return _FEED_NAME_RE.fullmatch(name) is not None


def atom_file(name: str) -> PurePosixPath:
    return PurePosixPath(name + ATOM_SUFFIX)


def json_file(name: str) -> PurePosixPath:
    return PurePosixPath(f"{name}.json")


def archive_dir(name: str) -> PurePosixPath:
    return PurePosixPath("archive", name)


def archive_file(name: str, page: int) -> PurePosixPath:
    return archive_dir(name) / f"{page}{ATOM_SUFFIX}"


def sealed_marker_file(name: str) -> PurePosixPath:
    """Records how many archive pages of `name` are sealed (complete, never rewritten), and the
    page size and base_url they were rendered with."""
    return archive_dir(name) / ".sealed-pages"


_P = TypeVar("_P", bound=PurePath)


def gzip_file(path: _P) -> _P:
    """The precompressed twin beside `path` (named as nginx's gzip_static looks for it)."""
    return path.with_name(path.name + GZIP_SUFFIX)


def site_url(base_url: str, path: str = "") -> str:
    """`path` (relative, without a leading slash) under the public base URL."""
    return base_url.rstrip("/") + "/" + path


def site_path(file: PurePosixPath) -> str:
    """Where a published file sits in the site, relative to its root (no leading slash): feeds live
    under feeds/, the index and the OPML at the top. Also the index page's relative links."""
    if file == INDEX_FILE:
        return ""
    if file == OPML_FILE:
        return str(OPML_FILE)
    return f"feeds/{file}"


def file_url(base_url: str, file: PurePosixPath) -> str:
    """Public URL of a published file."""
    return site_url(base_url, site_path(file))


def output_dir_of(config: Config) -> Path:
    """settings.output_dir, relative to the folder of feeds.toml."""
    output_dir = config.settings.output_dir
    return output_dir if output_dir.is_absolute() else config.path.parent / output_dir


def is_published(config: Config) -> bool:
    """Whether a publish has run for this output directory (its index page exists)."""
    return (output_dir_of(config) / INDEX_FILE).exists()
