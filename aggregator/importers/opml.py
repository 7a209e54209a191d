"""Move feed sources in and out as OPML 2.0: `import-opml` prints (or appends) [[sources]] blocks, `export-opml` writes a list.

OPML 2.0 (http://opml.org/spec2.opml, "subscription lists"): a feed is an `<outline>` with an
`xmlUrl` (type "rss" whatever the format); outlines nesting feeds are folders. A folder becomes the
category of the feeds in it (its title's pinyin slug, like a medium's: categories.py), a feed in
several folders is one source in several categories, and `--category` overrides the folders.

Reading is safe: the prolog (DOCTYPE, entity declarations) is cut before parsing
(parse/xml_safety.py), so nothing is expanded or fetched. The TOML is written by hand, strings
escaped as TOML basic strings, so the output can be reviewed and appended to feeds.toml.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aggregator.categories import medium_slug
from aggregator.clean.urls import is_http_url
from aggregator.config.load import Config, parse_config
from aggregator.errors import AggregatorError
from aggregator.parse.charset import CharsetError, decode_document
from aggregator.parse.xml_safety import strip_prolog

#: category for feeds outside any folder when no --category is given
UNFILED_CATEGORY = "imported"
UNFILED_TITLE = "导入的订阅"
EXPORT_TITLE = "aggregator feed sources"


class OpmlError(AggregatorError, ValueError):
    """The file is not an OPML document we can read."""


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One feed outline: its title, its feed URL, its site, and the titles of the folders around it."""

    title: str
    xml_url: str
    html_url: str | None
    folders: tuple[str, ...]


def read_opml(data: bytes) -> list[OpmlFeed]:
    """Every feed outline with an http(s) `xmlUrl`, in document order."""
    try:
        text = decode_document(data, None, None).text
    except CharsetError as e:
        raise OpmlError(f"import-opml: {e}") from e
    stripped = strip_prolog(text)
    try:
        root = ET.fromstring(stripped.text)
    except ET.ParseError as e:
        raise OpmlError("import-opml: not a well-formed XML document") from e
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise OpmlError(f"import-opml: the root element is <{root.tag}>, not an OPML document with a <body>")
    return list(_feeds(body, ()))


def opml_to_toml(data: bytes, category: str | None = None, known: Config | None = None) -> str:
    """[[sources]] blocks (and [categories.<id>] blocks for new folders) for the feeds in an OPML file.

    With `known` (the current feeds.toml), feeds whose URL is already a source are left out and
    names and categories already in use are not reused.
    """
    known_urls = {s.url for s in known.sources} if known else set()
    names = {s.name for s in known.sources} if known else set()
    known_categories = set(known.categories) if known else set()
    merged: dict[str, tuple[OpmlFeed, list[str]]] = {}
    new_categories: dict[str, str] = {}
    for feed in read_opml(data):
        if feed.xml_url in known_urls:
            continue
        if category:
            slug = category
        elif feed.folders:
            slug = medium_slug(feed.folders[-1])
            new_categories.setdefault(slug, feed.folders[-1])
        else:
            slug = UNFILED_CATEGORY
            new_categories.setdefault(slug, UNFILED_TITLE)
        entry = merged.setdefault(feed.xml_url, (feed, []))
        if slug not in entry[1]:
            entry[1].append(slug)
    blocks = [
        f"[categories.{slug}]\ntitle = {_toml_string(title)}\n"
        for slug, title in new_categories.items()
        if slug not in known_categories
    ]
    for feed, slugs in merged.values():
        name = _unique_name(feed.title or urlsplit(feed.xml_url).netloc, names)
        names.add(name)
        lines = ["[[sources]]", f"name = {_toml_string(name)}", f"url = {_toml_string(feed.xml_url)}",
                 "categories = [" + ", ".join(_toml_string(s) for s in slugs) + "]"]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def export_opml(config: Config) -> bytes:
    """The feed sources (kind = "feed") as OPML 2.0, one folder per category, sources in config order."""
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = EXPORT_TITLE
    body = ET.SubElement(opml, "body")
    feeds = [s for s in config.sources if s.kind == "feed"]
    folders: dict[str, ET.Element] = {}
    for source in feeds:
        if source.categories == "auto" or not source.categories:
            _add_feed(body, source.name, source.url)
            continue
        for category in source.categories:
            if category not in folders:
                settings = config.categories.get(category)
                title = settings.title if settings else category
                folders[category] = ET.SubElement(body, "outline", text=title, title=title)
            _add_feed(folders[category], source.name, source.url)
    ET.indent(opml)
    document: bytes = ET.tostring(opml, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _feeds(parent: ET.Element, folders: tuple[str, ...]) -> Iterator[OpmlFeed]:
    for outline in parent.findall("outline"):
        title = (outline.get("title") or outline.get("text") or "").strip()
        xml_url = (outline.get("xmlUrl") or "").strip()
        if is_http_url(xml_url):
            yield OpmlFeed(title, xml_url, (outline.get("htmlUrl") or "").strip() or None, folders)
        if len(outline):
            yield from _feeds(outline, (*folders, title) if title else folders)


def _add_feed(parent: ET.Element, name: str, url: str) -> None:
    ET.SubElement(parent, "outline", type="rss", text=name, title=name, xmlUrl=url)


def _unique_name(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


def _toml_string(value: str) -> str:
    # JSON string escapes are TOML basic-string escapes (TOML 1.0 "String"); DEL is the one
    # control character JSON leaves as it is and TOML does not allow
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")


def append_to_config(config_path: Path, blocks: str, env: Mapping[str, str]) -> Config:
    """Append `blocks` to feeds.toml, keeping the edit only when the whole file still validates.

    The file is replaced atomically; on a ConfigError it is left exactly as it was.
    """
    original = config_path.read_text(encoding="utf-8")
    updated = original.rstrip("\n") + "\n\n" + blocks.strip("\n") + "\n"
    config = parse_config(updated, config_path, env)  # raises ConfigError, file untouched
    temporary = config_path.with_name(f".{config_path.name}.tmp")
    temporary.write_text(updated, encoding="utf-8")
    temporary.replace(config_path)
    return config
