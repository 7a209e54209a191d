"""Read a well-formed RSS 2.0, RSS 1.0 or Atom 1.0 document with lxml into feedparser-shaped dicts, or decline it.

The fast path of parse/feed.py. One libxml2 parse builds the tree; a walk over it replays what
feedparser's SAX handlers do with each element (`_FeedParserMixin`, `namespaces/_base.py`),
producing the same plain `channel` and `entries` dicts feed.py reads, with the same keys and values
(the value rules are in parse/feedparser_compat.py). The walk knows a small vocabulary: the
elements real news feeds use (title, link, description, content:encoded, guid, pubDate, author,
category, …; Atom's entry elements; dc:creator and dc:date). Anything else it cannot prove
feedparser would ignore (a document that is not well-formed, another format or version, an
element from a namespace feedparser gives handlers to, markup inside a text element, base64 or
XHTML content, an attribute in an unknown namespace, …) raises `Declined` internally and
`read_feed` returns None: feed.py then hands the document to feedparser, the lenient path.
tests/test_parse_fast_feed.py holds the two paths to identical ParsedFeeds over feedparser's own
test corpus, the legacy posts and the benchmark corpus.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from aggregator.parse import feedparser_compat as fp

ATOM_NS = "http://www.w3.org/2005/Atom"
RSS10_NS = "http://purl.org/rss/1.0/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
#: namespaces read as feedparser's own prefix; elements in other namespaces it knows are declined
_PREFIXES = {key.lower(): prefix for key, prefix in {
    "": "", ATOM_NS.lower(): "", RSS10_NS: "", RDF_NS: "rdf", "http://www.w3.org/XML/1998/namespace": "xml",
    "http://purl.org/rss/1.0/modules/content/": "content", "http://purl.org/dc/elements/1.1/": "dc",
    "http://purl.org/rss/1.0/modules/syndication/": "sy", "http://wellformedweb.org/commentapi/": "wfw",
    "http://purl.org/rss/1.0/modules/slash/": "slash", "http://rssnamespace.org/feedburner/ext/1.0": "feedburner",
}.items()}
#: every prefix feedparser maps a namespace to: an unknown namespace under one of these names
#: would reach feedparser's handlers for that prefix, so only other prefixes are ignorable
_FEEDPARSER_PREFIXES = frozenset({
    "", "admin", "ag", "annotate", "audio", "blogchannel", "cc", "co", "content", "cp", "creativecommons", "dc",
    "dcterms", "email", "ev", "feedburner", "fm", "foaf", "geo", "georss", "gml", "icbm", "image", "itunes", "l",
    "media", "pingback", "prism", "psc", "rdf", "rdfs", "ref", "reqv", "search", "slash", "soap", "ss", "str",
    "sub", "sy", "szf", "taxo", "thr", "ti", "trackback", "wfw", "wiki", "xhtml", "xlink", "xml",
})
#: feedparser's namespace table (parse/feedparser_compat.py's source): a namespace in it but not in
#: `_PREFIXES` has handlers the walk does not replay
_FEEDPARSER_NAMESPACES = frozenset({
    "http://backend.userland.com/blogchannelmodule", "http://backend.userland.com/creativecommonsrssmodule",
    "http://backend.userland.com/rss", "http://blogs.law.harvard.edu/tech/rss", "http://creativecommons.org/ns#license",
    "http://cyber.law.harvard.edu/rss/creativecommonsrssmodule.html", "http://example.com/dtds/podcast-1.0.dtd",
    "http://example.com/necho", "http://example.com/newformat#", "http://freshmeat.net/rss/fm/",
    "http://hacks.benhammersley.com/rss/streaming/", "http://madskills.com/public/xml/rss/module/pingback/",
    "http://madskills.com/public/xml/rss/module/trackback/", "http://media.tangent.org/rss/1.0/",
    "http://my.netscape.com/rdf/simple/0.9/", "http://my.theinfo.org/changed/1.0/rss/", "http://podlove.org/simple-chapters",
    "http://postneo.com/icbm/", "http://prismstandard.org/namespaces/1.2/basic/", "http://purl.org/atom/ns#",
    "http://purl.org/dc/terms/", "http://purl.org/echo/", "http://purl.org/pie/", "uri/of/echo/namespace#",
    "http://purl.org/rss/1.0/modules/rss091#", "http://search.yahoo.com/mrss", "http://search.yahoo.com/mrss/",
    "http://web.resource.org/cc/", "http://webns.net/mvcb/", "http://www.georss.org/georss",
    "http://www.itunes.com/dtds/podcast-1.0.dtd", "http://www.opengis.net/gml", "http://www.w3.org/1999/xhtml",
    "http://www.w3.org/1999/xlink", "http://www.w3.org/2000/01/rdf-schema#", "http://www.w3.org/2003/01/geo/wgs84_pos#",
    "http://xmlns.com/foaf/0.1/", "http://purl.org/rss/1.0/modules/aggregation/",
    "http://purl.org/rss/1.0/modules/annotate/", "http://purl.org/rss/1.0/modules/company",
    "http://purl.org/rss/1.0/modules/email/", "http://purl.org/rss/1.0/modules/event/",
    "http://purl.org/rss/1.0/modules/image/", "http://purl.org/rss/1.0/modules/link/",
    "http://purl.org/rss/1.0/modules/reference/", "http://purl.org/rss/1.0/modules/richequiv/",
    "http://purl.org/rss/1.0/modules/search/", "http://purl.org/rss/1.0/modules/servicestatus/",
    "http://purl.org/rss/1.0/modules/subscription/", "http://purl.org/rss/1.0/modules/taxonomy/",
    "http://purl.org/rss/1.0/modules/textinput/", "http://purl.org/rss/1.0/modules/threading/",
    "http://purl.org/rss/1.0/modules/wiki/", "http://schemas.pocketsoap.com/rss/mydescmodule/",
    "http://schemas.xmlsoap.org/soap/envelope/",
})
#: elements with no feedparser handler that touches what feed.py reads: stored under their own key
_INERT_ITEM = frozenset({"comments", "enclosure", "sy:updateperiod", "sy:updatefrequency", "sy:updatebase",
                         "wfw:comment", "wfw:commentrss", "slash:comments", "slash:department", "slash:section",
                         "slash:hit_parade", "feedburner:origlink", "feedburner:origenclosurelink"})
_INERT_CHANNEL = _INERT_ITEM | frozenset({
    "description", "language", "copyright", "managingeditor", "webmaster", "pubdate", "lastbuilddate", "category",
    "generator", "docs", "cloud", "rating", "skiphours", "skipdays", "subtitle", "rights", "updated", "icon",
    "logo", "author", "items", "dc:language", "dc:rights", "dc:publisher", "dc:date", "dc:creator",
})
#: what may sit inside an inert channel element (skipHours/hour, Atom author/name)
_INERT_NESTED = frozenset({"hour", "day", "name", "email", "uri", "rdf:seq", "rdf:li"})
_IMAGE_CHILDREN = frozenset({"title", "link", "url", "width", "height", "description", "name"})
_PUBLISHED = frozenset({"pubdate", "published", "issued"})
_UPDATED = frozenset({"updated", "modified", "lastbuilddate", "dc:date"})
_PLAIN_OR_HTML = frozenset({"text/plain", "text/html"})


class Declined(Exception):
    """The document holds something the walk does not replay; feedparser reads it instead."""


@dataclass(slots=True)
class FastDocument:
    """feedparser's `result["feed"]` and `result["entries"]` for a document the fast path accepted."""

    channel: dict[str, Any] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True,
                          load_dtd=False, huge_tree=False)


def read_feed(text: str) -> FastDocument | None:
    """`text` (prolog already stripped) as feedparser would read it, or None when the fast path declines."""
    try:
        root = etree.fromstring(text, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    try:
        return _Walk().document(root)
    except Declined:
        return None


class _Walk:
    """One document's walk: feedparser's state (base URI stack, title depth, current entry) as attributes."""

    def __init__(self) -> None:
        self.out = FastDocument()
        self.base = ""
        self.bases: list[str] = []
        self.title_depth = -1
        self.atom = False

    def document(self, root: etree._Element) -> FastDocument:
        name = _name_of(root)
        if name == "rss":
            self._enter(root)
            children = list(root)
            if not children or any(_name_of(child) != "channel" for child in children):
                raise Declined("rss: only <channel> under the root")
            for channel in children:
                self._channel(channel, 2)
        elif name == "feed" and _namespace(root) == ATOM_NS:
            self.atom = True
            self._channel(root, 1)
        elif name == "rdf:rdf" and RSS10_NS in root.nsmap.values():
            self._enter(root)
            for child in root:
                child_name = _name_of(child)
                if child_name == "channel":
                    self._channel(child, 2)
                elif child_name == "item":
                    self._item(child, 2)
                elif child_name in ("image", "textinput"):
                    self._image(child, 2)
                else:
                    raise Declined(f"rdf: <{child_name}> under the root")
        else:
            raise Declined(f"not RSS 2.0, RSS 1.0 or Atom 1.0: <{name}>")
        return self.out

    # --- feedparser's unknown_starttag / unknown_endtag bookkeeping ---------------------------------

    def _enter(self, element: etree._Element) -> dict[str, str]:
        attrs = _attributes(element)
        self.base = fp.next_base(self.base, attrs.get("xml:base", attrs.get("base")))
        self.bases.append(self.base)
        return attrs

    def _leave(self) -> None:
        self.bases.pop()
        if self.bases and self.bases[-1]:
            self.base = self.bases[-1]

    def _text(self, element: etree._Element, attrs: dict[str, str], name: str, *, uri: bool = False) -> str:
        """`pop` for a text-only element: stripped, resolved when it holds a URI, repaired."""
        if len(element):
            raise Declined(f"markup inside <{name}>")
        if "mode" in attrs:
            raise Declined(f"mode= on <{name}>")
        value = (element.text or "").strip()
        if uri and value:
            value = fp.urljoin(self.base or "", value)
        return fp.finish_text(value)

    def _content_type(self, attrs: dict[str, str], default: str, name: str) -> str:
        """The type feedparser gives a text construct; RSS's guessed types and base64 are declined."""
        if "type" not in attrs:
            return default
        if not self.atom:
            raise Declined(f"type= on RSS <{name}>")
        content_type = fp.map_content_type(attrs["type"])
        if content_type not in _PLAIN_OR_HTML:
            raise Declined(f"<{name} type={attrs['type']!r}>")
        return content_type

    def _skip(self, element: etree._Element, allowed: frozenset[str]) -> None:
        """An element whose value nothing reads: walked only for its xml:base bookkeeping."""
        self._enter(element)
        for child in element:
            name = _name_of(child)
            if name is not None and name not in allowed:
                raise Declined(f"<{name}> nested where it is not read")
            self._skip(child, allowed)
        self._leave()

    # --- the channel -----------------------------------------------------------------------------

    def _channel(self, channel: etree._Element, depth: int) -> None:
        out = self.out.channel
        attrs = self._enter(channel)
        if "href" in attrs or "lastmod" in attrs:
            raise Declined("CDF attributes on the channel")
        for child in channel:
            name = _name_of(child)
            if name in ("item", "entry") and (name == "entry") == self.atom:
                self._item(child, depth + 1)
            elif name == "title":
                self._title(child, out, depth + 1)
            elif name == "link":
                self._link(child, out, entry=False)
            elif name in ("id", "guid"):
                self._guid(child, out)
            elif name == "ttl":
                attrs = self._enter(child)
                if len(child):
                    raise Declined("markup inside <ttl>")
                # feedparser keeps an unknown element's attributes instead of its text
                out["ttl"] = dict(attrs) if attrs else self._text(child, attrs, name)
                self._leave()
            elif name in ("image", "textinput"):
                self._image(child, depth + 1)
            elif name is None or name in _INERT_CHANNEL:
                self._skip(child, _INERT_NESTED)
            else:
                raise Declined(f"<{name}> in the channel")
        self._leave()

    def _image(self, image: etree._Element, depth: int) -> None:
        """<image>/<textInput>: their titles only move feedparser's title depth."""
        self._enter(image)
        self.title_depth = -1
        for child in image:
            name = _name_of(child)
            if name not in _IMAGE_CHILDREN:
                raise Declined(f"<{name}> in an image")
            attrs = self._enter(child)
            value = self._text(child, attrs, name)
            if name == "title" and value:
                self.title_depth = depth + 1
            self._leave()
        self._leave()

    def _title(self, element: etree._Element, context: dict[str, Any], depth: int) -> None:
        attrs = self._enter(element)
        self._content_type(attrs, "text/plain", "title")
        value = self._text(element, attrs, "title")
        if not -1 < self.title_depth <= depth:
            context["title"] = value
        if value:
            self.title_depth = depth
        self._leave()

    def _link(self, element: etree._Element, context: dict[str, Any], *, entry: bool) -> None:
        """`_start_link`: an Atom link's href (alternate HTML only), or an RSS link's text."""
        attrs = self._enter(element)
        rel = attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if rel == "self" else "text/html")
        href = attrs.get("url", attrs.get("uri", attrs.get("href")))
        if href:
            attrs["href"] = href
        if "href" in attrs:
            if len(element) or (element.text or "").strip():
                raise Declined("<link href> with content")
            if rel == "alternate" and fp.map_content_type(attrs["type"]) in fp.HTML_TYPES:
                context["link"] = fp.urljoin(self.base or "", attrs["href"])
        else:
            value = self._text(element, attrs, "link", uri=True)
            if entry:
                context["link"] = fp.fix_entry_link(value)
            else:
                context["link"] = fp.fix_feed_link(value)
        self._leave()

    # --- one item or entry -----------------------------------------------------------------------

    def _item(self, item: etree._Element, depth: int) -> None:
        entry: dict[str, Any] = {}
        self.out.entries.append(entry)
        attrs = self._enter(item)
        if "href" in attrs or "lastmod" in attrs:
            raise Declined("CDF attributes on an item")
        self.title_depth = -1
        if "rdf:about" in attrs:
            entry["id"] = attrs["rdf:about"]
        has_content = False
        for child in item:
            name = _name_of(child)
            if name == "title":
                self._title(child, entry, depth + 1)
            elif name == "link":
                self._link(child, entry, entry=True)
            elif name in ("guid", "id"):
                self._guid(child, entry)
            elif name in ("description", "summary"):
                if "summary" in entry and not has_content:
                    raise Declined(f"a second <{name}>, which feedparser takes for content")
                if (name == "summary") != self.atom:
                    raise Declined(f"<{name}> in {'Atom' if self.atom else 'RSS'}")
                attrs = self._enter(child)
                content_type = self._content_type(attrs, "text/plain" if self.atom else "text/html", name)
                value = self._text(child, attrs, name)
                entry["summary"] = value
                entry["summary_detail"] = {"type": content_type, "value": value}
                self._leave()
            elif name in ("content", "content:encoded"):
                if (name == "content") != self.atom:
                    raise Declined(f"<{name}> in {'Atom' if self.atom else 'RSS'}")
                has_content = True
                attrs = self._enter(child)
                content_type = self._content_type(attrs, "text/plain" if self.atom else "text/html", name)
                value = self._text(child, attrs, name)
                entry.setdefault("content", []).append({"type": content_type, "value": value})
                entry.setdefault("summary", value)
                self._leave()
            elif name in _PUBLISHED or name in _UPDATED:
                attrs = self._enter(child)
                entry["published" if name in _PUBLISHED else "updated"] = self._text(child, attrs, name)
                self._leave()
            elif name in ("author", "dc:creator"):
                self._author(child, entry)
            elif name == "category":
                self._category(child, entry)
            elif name == "source":
                if len(child):
                    raise Declined("<source> with elements")
                self.title_depth = -1
                self._skip(child, frozenset())
            elif name is None or name in _INERT_ITEM:
                self._skip(child, frozenset())
            else:
                raise Declined(f"<{name}> in an item")
        self._leave()

    def _guid(self, element: etree._Element, entry: dict[str, Any]) -> None:
        """`_start_guid`/`_end_guid`: an id that is a permalink also stands in for a missing link."""
        attrs = self._enter(element)
        is_link = attrs.get("ispermalink", "true") == "true"
        value = self._text(element, attrs, "id", uri=is_link)
        entry["id"] = value
        entry.setdefault("guidislink", is_link and "link" not in entry)
        if is_link:
            entry.setdefault("link", value)
        self._leave()

    def _author(self, element: etree._Element, entry: dict[str, Any]) -> None:
        """`_start_author`…`_end_author`, with Atom's <name>, <email> and <uri> children."""
        attrs = self._enter(element)
        entry.setdefault("authors", []).append({})
        pieces = [element.text or ""]
        for child in element:
            name = _name_of(child)
            child_attrs = self._enter(child)
            if name in ("name", "email"):
                if len(child):
                    raise Declined(f"markup inside <{name}>")
                value = (child.text or "").strip()
            elif name in ("uri", "url", "homepage"):
                name, value = "href", self._text(child, child_attrs, "href", uri=True)
            else:
                raise Declined(f"<{name}> in an author")
            self._leave()
            entry.setdefault("author_detail", {})[name] = value
            fp.sync_author_detail(entry)
            entry["authors"][-1][name] = value
            pieces.append(child.tail or "")
        if "mode" in attrs:
            raise Declined("mode= on an author")
        entry["author"] = fp.finish_text("".join(pieces).strip())
        fp.sync_author_detail(entry)
        self._leave()

    def _category(self, element: etree._Element, entry: dict[str, Any]) -> None:
        """`_start_category`/`_end_category`: term from the attribute, else from the text."""
        attrs = self._enter(element)
        tags: list[dict[str, str | None]] = entry.setdefault("tags", [])
        _add_tag(tags, attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label"))
        value = self._text(element, attrs, "category")
        if value:
            if tags and not tags[-1]["term"]:
                tags[-1]["term"] = value
            else:
                _add_tag(tags, value, None, None)
        self._leave()


def _add_tag(tags: list[dict[str, str | None]], term: str | None, scheme: str | None, label: str | None) -> None:
    if not term and not scheme and not label:
        return
    tag = {"term": term, "scheme": scheme, "label": label}
    if tag not in tags:
        tags.append(tag)


def _namespace(element: etree._Element) -> str:
    tag = element.tag
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def _name_of(element: etree._Element) -> str | None:
    """feedparser's name for an element ("title", "content:encoded"); None for one it ignores."""
    tag = element.tag
    if not isinstance(tag, str):
        raise Declined("an entity reference or other non-element node")
    return _element_name(tag, element.prefix)


@functools.lru_cache(maxsize=512)
def _element_name(tag: str, given_prefix: str | None) -> str | None:
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    lowered = namespace.lower()
    prefix = _PREFIXES.get(lowered)
    if prefix is not None:
        return f"{prefix}:{local.lower()}" if prefix else local.lower()
    if lowered in _FEEDPARSER_NAMESPACES or "backend.userland.com/rss" in lowered:
        raise Declined(f"{{{namespace}}}{local}: a namespace feedparser has handlers for")
    if not given_prefix or given_prefix.lower() in _FEEDPARSER_PREFIXES:
        raise Declined(f"{{{namespace}}}{local} under a prefix feedparser may read")
    return None


def _attributes(element: etree._Element) -> dict[str, str]:
    """feedparser's attribute dict: names lowercased (namespaced ones as "prefix:name"), rel and type values too."""
    attrs: dict[str, str] = {}
    for key, value in element.attrib.items():
        if key.startswith("{"):
            namespace, _, local = key[1:].partition("}")
            prefix = _PREFIXES.get(namespace.lower())
            if not prefix:
                raise Declined(f"attribute {key} in a namespace the walk does not know")
            key = f"{prefix}:{local}"
        key = key.lower()
        attrs[key] = value.lower() if key in ("rel", "type") else value
    return attrs
