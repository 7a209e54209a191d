"""Read the legacy mirror's Jekyll posts (`_posts/`, `old_post/`): front matter, body, article_id, category.

Pure apart from reading the files. A post (../shared/corpus/legacy-posts/README.md describes every
variant) is front matter (`title`, `date`, `categories`, `tags`) and a body: an optional `> digest`
line, the article HTML or a plain-text digest, the source link as an autolink line `<http://…>`, and
back-links `[返回…](…)`.

- article_id: from the source link (`infoCode=NW…`, `/news/<column>,<id>.html`), else from the file
  name (`2022-01-24-NW202201242257831752.md`); a post with neither is skipped ("no id").
- category: the medium's slug from the tag `<medium>新闻` (categories.py), because the legacy slug
  was made by xpinyin and a category page's title is not always its medium (README, "Not found");
  the legacy channels that were no medium (`emnews`) keep their slug. A slug already in use stays its
  medium's, so a colliding medium is filed apart, as in a poll.
- date: Jekyll's `YYYY-MM-DD HH:MM:SS +0800`; a date without offset is Beijing time (the script
  wrote +0800 from its second version on); an empty date (`date:  +0800`) is no date.

The same article was often written more than once (an emnews post and an NW post, or one file name
in both folders). `iter_legacy_posts` reads the files twice: a first pass finds each file's
article_id, the second reads them in article_id order, so the copies of one article come next to each
other and `merge_legacy_posts` makes them one. Only (article_id, path) pairs stay in memory, never bodies.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from aggregator import identity
from aggregator.categories import category_for_medium, medium_from_tag, slug_for_legacy
from aggregator.clean.urls import is_http_url
from aggregator.models import RawItem

#: the source name imported items remember (Item.sources) and their raw hash is kept under
IMPORT_SOURCE_NAME = "jekyll-import"
#: legacy categories that were channels, not media: slug → the title their feed gets
#: (get_emnews.py wrote both literally)
LEGACY_CHANNELS = {"emnews": "东财滚动新闻"}
#: the legacy NW source links point at the author's proxy of eastmoney's share page; an earlier
#: version of get_emnews.py linked the original host directly
LEGACY_PROXY_HOSTS = {"finews.zning.xyz": "choicewzp1.eastmoney.com"}

_POST_SUFFIXES = (".md", ".markdown")
_AUTOLINK_LINE = re.compile(r"^<(?P<url>[^<>\s]*)>$")
_BACK_LINKS_LINE = re.compile(r"^\[返回[^\]]*\]\([^)]*\)(?:\s*[｜|]?\s*\[[^\]]*\]\([^)]*\))*$")
_HTML_TAG = re.compile(r"<[A-Za-z!/]")
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M %z", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_BEIJING = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True, slots=True)
class LegacyPost:
    """One legacy post as read: front matter and body split, nothing cleaned yet."""

    path: Path
    article_id: str
    title: str
    published: datetime | None
    #: the new category slugs (see the module docstring)
    categories: tuple[str, ...]
    medium: str | None
    tags: tuple[str, ...]
    #: the article HTML (a plain-text digest post becomes <p> paragraphs)
    html: str
    #: the `> digest` line of an emnews post
    summary: str
    #: the article's original link (the legacy proxy host replaced), None for `<>` or none
    source_link: str | None

    def to_raw_item(self) -> RawItem:
        return RawItem(
            url=self.source_link, title=self.title, html=self.html, summary=self.summary,
            published=self.published, explicit_id=self.article_id, medium=self.medium, tags=self.tags,
        )


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file that was not imported, and why."""

    path: Path
    reason: str


def read_legacy_post(path: Path, media: dict[str, str] | None = None) -> LegacyPost | Skipped:
    """One post file; Skipped for unreadable text or front matter, or no article id.

    `media` (slug → medium) keeps a medium out of a category another medium owns (categories.py);
    the slug this post's medium is filed under is added to it, so the next colliding medium is kept apart.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return Skipped(path, "not UTF-8 text")
    except OSError as e:
        return Skipped(path, f"cannot read the file: {e.strerror or e}")
    split = _split_front_matter(text)
    if isinstance(split, str):
        return Skipped(path, f"unreadable front matter: {split}")
    front, body = split
    published = _read_date(front.get("date", ""))
    if isinstance(published, str):
        return Skipped(path, f"unreadable front matter: {published}")
    body, source_link = _cut_tail(body)
    summary, article_html = _cut_digest(body)
    article_id = _article_id(source_link, path.name)
    if article_id is None:
        return Skipped(path, "no article id in the source link or the file name")
    tag = front.get("tags", "").strip()
    medium = medium_from_tag(tag)
    legacy_category = front.get("categories", "").strip()
    if legacy_category in LEGACY_CHANNELS or (medium is None and legacy_category):
        category, medium = slug_for_legacy(legacy_category), None
    elif medium is not None:
        category = category_for_medium(medium, media)
        if media is not None:
            media.setdefault(category, medium)
    else:
        return Skipped(path, "unreadable front matter: no categories or tags")
    return LegacyPost(
        path=path, article_id=article_id, title=_unquote(front.get("title", "")), published=published,
        categories=(category,), medium=medium, tags=(tag,) if tag else (), html=article_html, summary=summary,
        source_link=_original_link(source_link),
    )


def iter_legacy_posts(
    paths: Iterable[Path], media: dict[str, str] | None = None
) -> Iterator[LegacyPost | Skipped]:
    """Every post under `paths` (files or folders): Skipped files first, then posts in article_id order.

    `media` as for read_legacy_post: the first pass files each medium, the second finds it filed.
    """
    keyed: list[tuple[str, str]] = []
    for path in _post_files(paths):
        post = read_legacy_post(path, media)
        if isinstance(post, Skipped):
            yield post
        else:
            keyed.append((post.article_id, str(path)))
    keyed.sort()
    for _, name in keyed:
        yield read_legacy_post(Path(name), media)


def merge_legacy_posts(posts: Sequence[LegacyPost]) -> LegacyPost:
    """The copies of one article as one post: the most complete copy, with the others' categories and gaps.

    Most complete: has a title, has a date, then the longest body; ties go to the later path
    (`old_post/` sorts after `_posts/` and holds the later copy). Deterministic for a given set of files.
    """
    best = max(posts, key=lambda p: (bool(p.title), p.published is not None, len(p.html), str(p.path)))
    others = [p for p in posts if p is not best]
    categories = tuple(dict.fromkeys(c for p in (best, *others) for c in p.categories))
    tags = tuple(dict.fromkeys(t for p in (best, *others) for t in p.tags))
    return LegacyPost(
        path=best.path, article_id=best.article_id,
        title=best.title,
        published=best.published or next((p.published for p in others if p.published), None),
        categories=categories, medium=best.medium or next((p.medium for p in others if p.medium), None),
        tags=tags, html=best.html,
        summary=best.summary or next((p.summary for p in others if p.summary), ""),
        source_link=best.source_link or next((p.source_link for p in others if p.source_link), None),
    )


def _post_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in _POST_SUFFIXES and p.is_file())
        else:
            yield path


def _split_front_matter(text: str) -> tuple[dict[str, str], str] | str:
    """(front matter, body), or why not. Keys are read line by line, not as YAML: the legacy script
    wrote titles between quotes without escaping, so a title holding `"` is not valid YAML."""
    lines = text.lstrip("\r\n").split("\n")
    if lines[0].rstrip("\r") != "---":
        return "no opening ---"
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.rstrip("\r") == "---")
    except StopIteration:
        return "no closing ---"
    front: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], 2):
        key, colon, value = line.rstrip("\r").partition(":")
        if not colon or not key.strip() or key != key.lstrip():
            return f"line {number} is not `key: value`"
        front[key.strip()] = value.strip()
    return front, "\n".join(lines[end + 1 :])


def _read_date(value: str) -> datetime | None | str:
    """Aware UTC datetime, None for an empty date (`date:  +0800`), or why it is unreadable.

    A date without offset is Beijing time whatever the importing machine's settings: the legacy
    script ran for a Chinese site and wrote `+0800` once it wrote an offset at all.
    """
    value = value.strip().strip("'\"")
    if not value or re.fullmatch(r"[+-]\d{4}", value):
        return None
    for form in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(value, form)
        except ValueError:
            continue
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=_BEIJING)).astimezone(UTC)
    return f"date {value!r} is not YYYY-MM-DD HH:MM:SS +ZZZZ"


def _cut_tail(body: str) -> tuple[str, str | None]:
    """The body without its back-link lines and source-link line, and that link ("" for `<>`)."""
    lines = body.rstrip().split("\n")
    while lines and _BACK_LINKS_LINE.match(lines[-1].strip()):
        lines.pop()
        while lines and not lines[-1].strip():
            lines.pop()
    link = None
    if lines and (match := _AUTOLINK_LINE.match(lines[-1].strip())):
        link = match["url"]
        lines.pop()
    return "\n".join(lines).strip(), link


def _cut_digest(body: str) -> tuple[str, str]:
    """(digest, article HTML): a leading `> ` blockquote is the digest; plain text becomes paragraphs."""
    lines = body.split("\n")
    quoted = list(itertools.takewhile(lambda line: line.startswith(">"), lines))
    digest = " ".join(line[1:].strip() for line in quoted).strip()
    rest = "\n".join(lines[len(quoted) :]).strip()
    if rest and not _HTML_TAG.search(rest):
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", rest) if p.strip()]
        rest = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    return digest, rest


def _article_id(source_link: str | None, file_name: str) -> str | None:
    if source_link:
        found = identity.article_id(RawItem(url=source_link), IMPORT_SOURCE_NAME)
        if identity.normalise_info_code(found) == found:
            return found
    # Jekyll names a post YYYY-MM-DD-<slug>; the legacy slug is the id, which holds no "-"
    return identity.normalise_info_code(Path(file_name).stem.rsplit("-", 1)[-1])


def _original_link(link: str | None) -> str | None:
    if not link or not is_http_url(link):
        return None
    parts = urlsplit(link)
    host = LEGACY_PROXY_HOSTS.get(parts.netloc.lower())
    return urlunsplit(parts._replace(netloc=host)) if host else link


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value
