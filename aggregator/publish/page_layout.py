"""Where the website's pages live under output_dir and the URL each is served at.

No business logic. Beside publish/layout.py's feed table, the same folder holds:

    /a/<key>.html                    a/<key>.html (+ .gz)        one article; a/<key>.gone once retention removed it
    /c/<name>.html                   c/<name>.html (+ .gz)       a category's newest page_size items
    /c/<name>/<n>.html               c/<name>/<n>.html (+ .gz)   older items, page 1 = the oldest (never changes once sealed)
    /opensearch.xml                  opensearch.xml (+ .gz)      the OpenSearch description of /search
    /search?q=…                      (dynamic, aggregator serve)

`<key>` is the article_id itself when it is a plain token (`NW202201242257831752`), else `_` and 32
hex digits of its SHA-256 (ids made from URLs or GUIDs). Bookkeeping files start with a dot and are
never served: `.pages-state.json`, and `.nginx-legacy-map.conf` for nginx deployments.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

ARTICLE_DIR = PurePosixPath("a")
CATEGORY_DIR = PurePosixPath("c")
OPENSEARCH_FILE = PurePosixPath("opensearch.xml")
PAGES_STATE_FILE = PurePosixPath(".pages-state.json")
NGINX_MAP_FILE = PurePosixPath(".nginx-legacy-map.conf")
SEARCH_PATH = "search"
HTML_SUFFIX = ".html"
GONE_SUFFIX = ".gone"

ARTICLE_KEY_PATTERN = r"[A-Za-z0-9][A-Za-z0-9-]{0,79}|_[0-9a-f]{32}"
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,79}")


def article_key(article_id: str) -> str:
    if _PLAIN_ID.fullmatch(article_id):
        return article_id
    return "_" + hashlib.sha256(article_id.encode("utf-8")).hexdigest()[:32]


def article_file(article_id: str) -> PurePosixPath:
    return ARTICLE_DIR / f"{article_key(article_id)}{HTML_SUFFIX}"


def gone_file(article_id: str) -> PurePosixPath:
    """The tombstone of an article removed by retention: its URL answers 410 Gone."""
    return ARTICLE_DIR / f"{article_key(article_id)}{GONE_SUFFIX}"


def category_file(name: str, page: int | None = None) -> PurePosixPath:
    """The front page of category `name` (page None) or its older page `page` (1 = oldest)."""
    if page is None:
        return CATEGORY_DIR / f"{name}{HTML_SUFFIX}"
    return CATEGORY_DIR / name / f"{page}{HTML_SUFFIX}"


def page_path(file: PurePosixPath) -> str:
    """A page's path in the site (no leading slash): pages sit where their files are."""
    return str(file)


def root_of(file: PurePosixPath) -> str:
    """The relative prefix from `file` back to the site root ("", "../", "../../")."""
    return "../" * (len(file.parts) - 1)


_PAGE_RE = re.compile(
    rf"/(?:a/(?P<article>{ARTICLE_KEY_PATTERN})|c/(?P<category>[a-z0-9][a-z0-9_-]{{0,63}})(?:/(?P<page>[1-9][0-9]{{0,8}}))?)\.html"
)


def resolve_page(raw_path: str) -> PurePosixPath | None:
    """The page file a request path names (still %-encoded: nothing encoded matches), or None."""
    if raw_path == f"/{OPENSEARCH_FILE}":
        return OPENSEARCH_FILE
    match = _PAGE_RE.fullmatch(raw_path)
    if match is None:
        return None
    if match["article"] is not None:
        return ARTICLE_DIR / f"{match['article']}{HTML_SUFFIX}"
    return category_file(match["category"], int(match["page"]) if match["page"] else None)


def gone_file_of_page(file: PurePosixPath) -> PurePosixPath | None:
    """The tombstone that answers for a missing article page, if `file` is one."""
    if file.parent == ARTICLE_DIR and file.suffix == HTML_SUFFIX:
        return file.with_suffix(GONE_SUFFIX)
    return None
