"""feedparser 6.0's value rules, restated so the fast path (parse/fast_feed.py) ends where feedparser ends.

Each function reproduces one step feedparser applies to an element's text once its SAX parser has
collected it (`_FeedParserMixin.pop`, `_sync_author_detail`, `urls._urljoin`,
`urls.make_safe_absolute_uri`; feedparser is BSD-licensed, kurtmckee/feedparser). Keeping them in
one module makes the contract visible: where feedparser changes a rule, this module and the
differential test (tests/test_parse_fast_feed.py) change with it. Nothing here imports feedparser,
whose import alone costs a pass that only gets 304s more than the pass itself.
"""

from __future__ import annotations

import functools
import re
import urllib.parse

#: `feedparser.urls.ACCEPTABLE_URI_SCHEMES`: what `make_safe_absolute_uri` lets through
ACCEPTABLE_URI_SCHEMES = frozenset({
    "file", "ftp", "gopher", "h323", "hdl", "http", "https", "imap", "magnet", "mailto", "mms", "news", "nntp",
    "prospero", "rsync", "rtsp", "rtspu", "sftp", "shttp", "sip", "sips", "snews", "svn", "svn+ssh", "telnet",
    "wais", "aim", "callto", "cvs", "facetime", "feed", "git", "gtalk", "irc", "ircs", "irc6", "itms", "msnim",
    "skype", "ssh", "smb", "ymsg",
})
#: `feedparser.html._cp1252`: C1 controls read as the windows-1252 characters they were meant to be
CP1252 = {
    128: "€", 130: "‚", 131: "ƒ", 132: "„", 133: "…", 134: "†", 135: "‡", 136: "ˆ", 137: "‰", 138: "Š",
    139: "‹", 140: "Œ", 142: "Ž", 145: "‘", 146: "’", 147: "“", 148: "”", 149: "•", 150: "–", 151: "—",
    152: "˜", 153: "™", 154: "š", 155: "›", 156: "œ", 158: "ž", 159: "Ÿ",
}
HTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
#: elements whose text feedparser resolves against xml:base (`can_be_relative_uri`)
RELATIVE_URI_ELEMENTS = frozenset({"comments", "docs", "href", "icon", "id", "link", "logo", "url", "wfw_comment",
                                   "wfw_commentrss"})

_URI_FIXER_RE = re.compile("^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")
_QUERY_ENTITY_RE = re.compile("&([A-Za-z0-9_]+);")
_EMAIL_RE = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
_C1_RE = re.compile("[\x80-\x9f]")


def urljoin(base: str, uri: str) -> str:
    """`feedparser.urls._urljoin`: extra slashes after "scheme://" dropped, then urllib's join."""
    uri = _URI_FIXER_RE.sub(r"\1\3", uri)
    try:
        return urllib.parse.urljoin(base, uri)
    except ValueError:
        return ""


def safe_absolute_uri(base: str, rel: str | None) -> str:
    """`feedparser.urls.make_safe_absolute_uri`: the joined URI, or "" for a scheme outside the list."""
    if not base:
        return rel or ""
    if not rel:
        try:
            scheme = urllib.parse.urlparse(base)[0]
        except ValueError:
            return ""
        return base if not scheme or scheme in ACCEPTABLE_URI_SCHEMES else ""
    uri = urljoin(base, rel)
    return uri if uri.strip().split(":", 1)[0] in ACCEPTABLE_URI_SCHEMES else ""


@functools.lru_cache(maxsize=256)
def next_base(current: str, declared: str | None) -> str:
    """The base URI inside an element, from its parent's and its own xml:base (`unknown_starttag`)."""
    wanted = declared or current
    if current:
        return safe_absolute_uri(current, wanted) or current
    return urljoin(current, wanted)


def finish_text(text: str) -> str:
    """What `pop` makes of a text element's characters after stripping and URI resolution.

    feedparser is always handed UTF-8 here, so it applies its "UTF-8 read as Latin-1" repair, then
    maps C1 controls to windows-1252.
    """
    if not text.isascii():
        try:
            text = text.encode("iso-8859-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        if _C1_RE.search(text):
            text = text.translate(CP1252)
    return text


def fix_entry_link(link: str) -> str:
    """`pop`'s repair of entry links whose query was taken for character references (`?a=1&b;=2`)."""
    return fix_feed_link(link.replace("&amp;", "&"))


def fix_feed_link(link: str) -> str:
    return _QUERY_ENTITY_RE.sub(r"&\g<1>", link)


def map_content_type(content_type: str) -> str:
    content_type = content_type.lower()
    if content_type in ("text", "plain"):
        return "text/plain"
    if content_type == "html":
        return "text/html"
    if content_type == "xhtml":
        return "application/xhtml+xml"
    return content_type


def sync_author_detail(context: dict[str, object]) -> None:
    """`_sync_author_detail`: the "author" string from the detail, or the detail from an RSS "email (Name)"."""
    authors = context.get("authors")
    detail: dict[str, str] = authors[-1] if isinstance(authors, list) and authors else {}
    if detail:
        name, email = detail.get("name"), detail.get("email")
        if name and email:
            context["author"] = f"{name} ({email})"
        elif name:
            context["author"] = name
        elif email:
            context["author"] = email
        return
    author = context.get("author")
    if not isinstance(author, str) or not author:
        return
    found_email = None
    match = _EMAIL_RE.search(author)
    if match:
        found_email = match.group(0)
        author = author.replace(found_email, "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "").strip()
        if author and author[0] == "(":
            author = author[1:]
        if author and author[-1] == ")":
            author = author[:-1]
        author = author.strip()
    if author or found_email:
        context.setdefault("author_detail", detail)
    if author:
        detail["name"] = author
    if found_email:
        detail["email"] = found_email
