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
from pathlib import PurePosixPath

#: the feed of every category together; no category may take this id
ALL_FEED = "all"

#: category ids we publish: they become file names and URL segments verbatim, so nothing that
#: needs escaping, no dots (no "..", no hidden files) and no separators of any OS
FEED_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
_FEED_NAME_RE = re.compile(FEED_NAME_PATTERN)

INDEX_FILE = PurePosixPath("index.html")
OPML_FILE = PurePosixPath("feeds.opml")
#: retry list of WebSub pings that failed (aggregator/websub.py)
PENDING_PINGS_FILE = PurePosixPath(".websub-pending.json")
GZIP_SUFFIX = ".gz"


def is_feed_name(name: str) -> bool:
    return _FEED_NAME_RE.fullmatch(name) is not None


def atom_file(name: str) -> PurePosixPath:
    return PurePosixPath(f"{name}.atom")


def json_file(name: str) -> PurePosixPath:
    return PurePosixPath(f"{name}.json")


def archive_dir(name: str) -> PurePosixPath:
    return PurePosixPath("archive", name)


def archive_file(name: str, page: int) -> PurePosixPath:
    return archive_dir(name) / f"{page}.atom"


def sealed_marker_file(name: str) -> PurePosixPath:
    """Holds how many archive pages of `name` are sealed (complete, never rewritten)."""
    return archive_dir(name) / ".sealed-pages"


def gzip_file(path: PurePosixPath) -> PurePosixPath:
    return path.with_name(path.name + GZIP_SUFFIX)


def site_url(base_url: str, path: str = "") -> str:
    """`path` (relative, without a leading slash) under the public base URL."""
    return base_url.rstrip("/") + "/" + path


def file_url(base_url: str, file: PurePosixPath) -> str:
    """Public URL of a published file: feeds live under /feeds/, the index and OPML at the top."""
    if file == INDEX_FILE:
        return site_url(base_url)
    if file == OPML_FILE:
        return site_url(base_url, str(OPML_FILE))
    return site_url(base_url, f"feeds/{file}")
