"""feedparser's test documents as HTTP routes, with their `Header:` lines as real response headers; no business logic.

Many files of ../shared/corpus/feedparser-tests open with a comment holding lines such as
`Header:      Content-type: text/xml; charset=koi8-r`: the HTTP response headers feedparser's own
test server sends with that document. We send them the same way, so charset and validator
handling meet what feedparser's tests meet.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.fixture_server import Route

_HEADER_RE = re.compile(rb"^Header:[ \t]*([A-Za-z0-9-]+):[ \t]*([^\r\n]*)$", re.MULTILINE)
#: the comment block lies at the top; a `Header:` further down is document text
_HEADER_SCAN_BYTES = 4096
#: what feedparser's test server answers without a Content-Type line
DEFAULT_CONTENT_TYPE = "application/xml"


def corpus_documents(corpus_dir: Path) -> list[Path]:
    """Every test document (XML and JSON), in a stable order."""
    return sorted(p for p in corpus_dir.rglob("*") if p.suffix in (".xml", ".json") and p.is_file())


def response_headers(body: bytes) -> dict[str, str]:
    """The `Header: Name: value` lines of a document's opening comment, as header name → value."""
    found: dict[str, str] = {}
    for match in _HEADER_RE.finditer(body[:_HEADER_SCAN_BYTES]):
        found[match.group(1).decode("ascii")] = match.group(2).decode("latin-1").strip()
    return found


def corpus_route(path: Path) -> Route:
    """The route that serves one document as feedparser's test server would."""
    body = path.read_bytes()
    headers = response_headers(body)
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if content_type is None:
        content_type = "application/json" if path.suffix == ".json" else DEFAULT_CONTENT_TYPE
    rest = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Route(body=body, content_type=content_type, headers=rest)


def route_path(corpus_dir: Path, path: Path) -> str:
    """The URL path a document is served at: /corpus/<its path in the corpus>."""
    return "/corpus/" + path.relative_to(corpus_dir).as_posix()
