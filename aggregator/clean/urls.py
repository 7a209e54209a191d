"""Make item URLs safe and canonical: resolve against the item URL, refuse script schemes, drop trackers.

Pure string functions with no I/O; the identity stage calls `strip_tracking_params` on every canonical
link, so the common case (no query string) returns without parsing anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import unquote_plus, urljoin, urlsplit

from aggregator.clean.rules import (
    TRACKING_PARAM_PREFIXES,
    TRACKING_PARAMS,
    TRACKING_PARAMS_ON_HOSTS,
    HostRule,
)

#: The only schemes a cleaned item may link or load from. `data:` is refused everywhere, images
#: included: in the sampled feeds data: images are lazy-load placeholders and 1×1 beacons, never
#: content, and a data: URL can carry a whole SVG document (docs/cleaning.md).
SAFE_URL_SCHEMES = frozenset({"http", "https", "mailto"})
WEB_SCHEMES = frozenset({"http", "https"})

_SCHEME_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
# WHATWG URL Standard, "basic URL parser": strip leading and trailing C0 controls and spaces, and
# remove every ASCII tab or newline anywhere, as browsers do (so "jav&#x09;ascript:" is javascript:).
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
_REMOVE_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")
# Any other control character left inside a URL makes it garbage.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

#: host → the path prefixes of the HostRules naming it
HostIndex = Mapping[str, tuple[str, ...]]

_HOST_SCOPED_PARAMS = frozenset().union(*(names for _, names in TRACKING_PARAMS_ON_HOSTS))


def is_http_url(value: str | None) -> bool:
    """Whether `value` names a web page by an absolute http(s) URL (scheme in any case, then `//`).

    The one such test of the package: identity, items, the index page and the importers ask it.
    Whether the host is usable is absolute_url's question.
    """
    return value is not None and value.lower().startswith(("http://", "https://"))


def absolute_url(url: str, base: str | None) -> str | None:
    """`url` made absolute against `base` (the item's own URL); None when it is unsafe or unusable.

    None for every scheme outside SAFE_URL_SCHEMES (javascript:, vbscript:, data:, file:, …) and for
    garbage (control characters, a web URL without a host, a malformed port or IPv6 literal).
    Without a usable base a relative URL is returned as it is.
    """
    cleaned, settled = _vet_url(url)
    if settled:
        return cleaned
    assert cleaned is not None
    usable_base = _usable_base(base) if base else None
    if usable_base is None:
        return None if _SCHEME_RE.match(cleaned) is not None else cleaned
    try:
        joined = urljoin(usable_base, cleaned)
    except ValueError:
        return None
    return joined if _is_web_url(joined) else None


@lru_cache(maxsize=8192)
def _vet_url(url: str) -> tuple[str | None, bool]:
    """What absolute_url can say without the base: (result, True), or (cleaned relative URL, False).

    Cached: articles repeat the same absolute links and images (quote pages, K-line charts) and
    the answer for those does not depend on the item's URL.
    """
    cleaned = url.strip(_C0_AND_SPACE).translate(_REMOVE_TAB_NEWLINE)
    if not cleaned or _CONTROL_RE.search(cleaned):
        return None, True
    cleaned = cleaned.replace(" ", "%20")
    match = _SCHEME_RE.match(cleaned)
    if match is not None:
        scheme = match.group(1).lower()
        if scheme not in SAFE_URL_SCHEMES:
            return None, True
        if scheme == "mailto":
            return "mailto" + cleaned[len(scheme):], True
        cleaned = scheme + cleaned[len(scheme):]
        if cleaned.startswith(f"{scheme}://"):
            return (cleaned if _has_valid_host(cleaned) else None), True
        # "http:path" is relative to a base of the same scheme (RFC 3986 §5.4.2, browsers agree)
    return cleaned, False


def strip_tracking_params(url: str) -> str:
    """`url` without utm_* and the other tracking parameters of clean/rules.py; otherwise byte-identical."""
    query_start = url.find("?")
    if query_start < 0:
        return url
    fragment_start = url.find("#")
    if 0 <= fragment_start < query_start:
        return url
    query_end = fragment_start if fragment_start > query_start else len(url)
    query = url[query_start + 1:query_end]
    if not query:
        return url
    pairs = query.split("&")
    names = [_param_name(pair) for pair in pairs]
    host = _host_of(url) if _HOST_SCOPED_PARAMS.intersection(names) else ""
    kept = [pair for pair, name in zip(pairs, names, strict=True) if not is_tracking_param(name, host)]
    if len(kept) == len(pairs):
        return url
    rest = url[query_end:]
    return url[:query_start] + ("?" + "&".join(kept) if kept else "") + rest


def is_tracking_param(name: str, host: str = "") -> bool:
    """Whether a query parameter (any case) only tracks the reader; `host` enables site-scoped names."""
    lowered = name.lower()
    if lowered.startswith(TRACKING_PARAM_PREFIXES) or lowered in TRACKING_PARAMS:
        return True
    if host and lowered in _HOST_SCOPED_PARAMS:
        return any(lowered in names and _host_matches(host, rule.host) for rule, names in TRACKING_PARAMS_ON_HOSTS)
    return False


def build_host_index(rules: tuple[HostRule, ...]) -> HostIndex:
    """`rules` as host → path prefixes, built once per compiled rule set (clean/compiled.py)."""
    index: dict[str, tuple[str, ...]] = {}
    for rule in rules:
        index[rule.host] = index.get(rule.host, ()) + (rule.path_prefix,)
    return index


def matches_host_index(url: str, index: HostIndex) -> bool:
    """Whether a URL with an authority belongs to a rule of `index`: its host or a subdomain of it,
    and a path starting with the rule's prefix. One dict lookup per host label, no URL parsing."""
    if not index:
        return False
    host, path = _host_and_path(url)
    labels = host.split(".") if host else []
    for start in range(len(labels)):
        prefixes = index.get(".".join(labels[start:]))
        if prefixes is not None and path.startswith(prefixes):
            return True
    return False


def _host_and_path(url: str) -> tuple[str, str]:
    """(lower-case host, path) of "scheme://[user@]host[:port]/path?…"; ("", "") when there is none."""
    scheme = _SCHEME_RE.match(url)
    authority_start = scheme.end() if scheme else 0
    if not url.startswith("//", authority_start):
        return "", ""
    rest = url[authority_start + 2:]
    end = len(rest)
    for delimiter in "/?#":
        position = rest.find(delimiter)
        if 0 <= position < end:
            end = position
    authority, path = rest[:end], rest[end:]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        return "", ""  # IPv6 literals are never rule hosts
    host = host.partition(":")[0].lower().rstrip(".")
    return host, (path if path.startswith("/") else "/" + path)


def _param_name(pair: str) -> str:
    name = pair.split("=", 1)[0]
    if "%" in name or "+" in name:
        name = unquote_plus(name)
    return name.lower()


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _host_matches(host: str, rule_host: str) -> bool:
    return host == rule_host or host.endswith("." + rule_host)


@lru_cache(maxsize=1024)
def _usable_base(base: str) -> str | None:
    cleaned = base.strip(_C0_AND_SPACE).translate(_REMOVE_TAB_NEWLINE)
    return cleaned if _is_web_url(cleaned) else None


def _is_web_url(url: str) -> bool:
    match = _SCHEME_RE.match(url)
    return (match is not None and match.group(1).lower() in WEB_SCHEMES
            and url[match.end():].startswith("//") and _has_valid_host(url))


def _has_valid_host(url: str) -> bool:
    try:
        split = urlsplit(url)
        _ = split.port  # raises ValueError on a malformed port
        return bool(split.hostname)
    except ValueError:
        return False
