"""Turn a medium's name into its category: a stable pinyin slug (南通日报 → nantongribao) and a title.

Pure. The slug rules (docs/sources.md, "Categories from the medium"):

1. NFKC first, so full-width letters and digits (ＩＴ之家, ２１世纪) read as ASCII.
2. Han characters become toneless pinyin through pypinyin, whose phrase dictionary reads polyphones
   in context (重庆 → chongqing, 银行 → yinhang, 厦门 → xiamen); syllables are joined without a
   separator, as the legacy site did.
3. Latin letters and digits are kept and lower-cased (21世纪经济报道 → 21shijijingjibaodao,
   IT之家 → itzhijia); accents are dropped (é → e).
4. Every other run of characters (spaces, brackets, ·, hyphens) becomes one "-", none at either end:
   安信国际证券(香港) → anxinguojizhengquan-xianggang. The result is lowercase ASCII and URL-safe.
5. A name that leaves nothing (emoji, kana only) gets `medium-<hash>`.

Distinct media that produce the same slug (金融界 and 金融街 are both jinrongjie; TechWeb and Techweb
were two categories on the legacy site) stay distinct: `category_for_medium` is given the slugs already
taken (slug → medium, from the store); the medium that took a slug first keeps it and a later one gets
`<slug>-<4 hex digits of the SHA-256 of its name>` (more digits in the unlikely case those collide too).
A medium that already has a slug keeps it, so a pypinyin upgrade never moves an existing category.

The legacy mirror (zning1994/finews, `get_emnews.py`) made its slugs with xpinyin: one reading per
character, no context, and everything that is not Han kept as it was, spaces, brackets and case
included (`21shijijingjibaodao 21caijingAPP`, `anxinguojizhengquan(xianggang)`, `Career In touxingPEVC`).
`slug_for_legacy` maps such a slug to ours: `LEGACY_SLUG_MAP` for the context readings in which the two
libraries differ, otherwise rules 1, 3 and 4 above.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import unquote


#: suffix of every category title (the legacy tag was `<medium>新闻`, e.g. 南通日报新闻)
TITLE_SUFFIX = "新闻"

#: legacy slugs whose medium pypinyin reads differently from xpinyin (polyphones read in context).
#: Each legacy slug here is a real category page of zning1994/finews (`category/<slug>.html`); the
#: medium is the one whose xpinyin reading gives that slug.
LEGACY_SLUG_MAP: Mapping[str, str] = {
    "zhongqingchenbao": "chongqingchenbao",  # 重庆晨报: 重 read zhong out of context
    "shamenribao": "xiamenribao",  # 厦门日报: 厦 read sha
    "zhaoshangyinxing": "zhaoshangyinhang",  # 招商银行: 行 read xing
    "xingyeyinxing": "xingyeyinhang",  # 兴业银行
    "zhongguoyinxingbaoxianbao": "zhongguoyinhangbaoxianbao",  # 中国银行保险报
}

#: legacy category pages: /category/<slug>.html (per-medium, the NW back-links) and /<slug>/ (the emnews
#: channel, and the per-medium links of the first market-news script); ../shared/corpus/legacy-posts/README.md
_LEGACY_CATEGORY_PATHS = (
    re.compile(r"^/category/(?P<slug>[^/]+?)(?:\.html|/)?$"),
    re.compile(r"^/(?P<slug>[^/.]+)/$"),
)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_MIN_SUFFIX_HEX = 4


def medium_slug(medium: str) -> str:
    """The base slug of `medium` (before disambiguation)."""
    # imported here: the phrase dictionary costs ~0.5 s of start-up that only naming a new medium needs
    # (pool workers get it from the forkserver's preload)
    from pypinyin import Style, lazy_pinyin

    text = unicodedata.normalize("NFKC", medium).strip()
    # Non-Han runs come back unchanged from pypinyin (errors=...), so Latin, digits and punctuation
    # pass through to the ASCII folding below.
    syllables = lazy_pinyin(text, style=Style.NORMAL, errors=lambda run: run)
    slug = _ascii_slug("".join(syllables))
    if not slug:
        return "medium-" + _name_hash(medium)[:_MIN_SUFFIX_HEX]
    return slug


def category_for_medium(medium: str, taken: Mapping[str, str] | None = None) -> str:
    """The category slug of `medium`, distinct from every slug in `taken` (slug → medium) owned by another."""
    name = medium.strip()
    taken = taken or {}
    for slug, owner in taken.items():
        if owner == name:
            return slug
    base = medium_slug(name)
    if taken.get(base, name) == name:
        return base
    digest = _name_hash(name)
    for length in range(_MIN_SUFFIX_HEX, len(digest) + 1):
        candidate = f"{base}-{digest[:length]}"
        if taken.get(candidate, name) == name:
            return candidate
    raise AssertionError("unreachable: a full SHA-256 suffix cannot be taken by another name")


def category_title(medium: str) -> str:
    """`<medium>新闻`, the title of a medium's category feed."""
    return medium.strip() + TITLE_SUFFIX


def media_by_slug(titles: Mapping[str, str]) -> dict[str, str]:
    """slug → medium for the categories (id → title) titled `<medium>新闻`: the `taken` of feeds.toml."""
    return {slug: medium for slug, title in titles.items() if (medium := medium_from_tag(title)) is not None}


def medium_from_tag(tag: str) -> str | None:
    """南通日报新闻 → 南通日报: the legacy tag of a per-medium category, None when it is not one."""
    tag = tag.strip()
    if tag.endswith(TITLE_SUFFIX) and len(tag) > len(TITLE_SUFFIX):
        return tag[: -len(TITLE_SUFFIX)]
    return None


def slug_for_legacy(legacy_slug: str) -> str:
    """The new slug for a legacy category slug (percent-encoded or not)."""
    slug = unquote(legacy_slug).strip()
    if slug in LEGACY_SLUG_MAP:
        return LEGACY_SLUG_MAP[slug]
    if _HAN.search(slug):
        # a slug still holding Han characters never came from xpinyin; read it as a medium name
        return medium_slug(slug)
    return _ascii_slug(slug) or "medium-" + _name_hash(slug)[:_MIN_SUFFIX_HEX]


def redirect_for_legacy_category(path: str, target: str = "/{slug}.atom") -> str | None:
    """Where an old category link should now point, or None when `path` is no legacy category page.

    `path` is the request path (`/category/21shijijingjibaodao%2021caijingAPP.html`, `/emnews/`);
    `target` formats the new location from `{slug}`. An unchanged slug still redirects: the legacy
    page was HTML, the new location is the category's feed. `/<slug>/` matches any one-segment folder,
    so a server asks only for paths it does not serve itself.
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    for pattern in _LEGACY_CATEGORY_PATHS:
        if match := pattern.match(path):
            return target.format(slug=slug_for_legacy(match["slug"]))
    return None


def _ascii_slug(text: str) -> str:
    # NFKD splits é into e + a combining accent; dropping the accents keeps the letter
    letters = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _NOT_SLUG.sub("-", letters.lower()).strip("-")


def _name_hash(name: str) -> str:
    return hashlib.sha256(unicodedata.normalize("NFC", name).encode("utf-8")).hexdigest()
