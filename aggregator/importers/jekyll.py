"""Import the legacy mirror's Jekyll posts (`_posts/`, `old_post/`) as items, through identity, clean, dedupe, storage.

A post (../shared/corpus/legacy-posts/README.md describes every variant) is front matter
(`title`, `date`, `categories`, `tags`) and a body: an optional `> digest` line, the article HTML or
a plain-text digest, the source link as an autolink line `<http://…>`, and back-links `[返回…](…)`.

- article_id: from the source link (`infoCode=NW…`, `/news/<column>,<id>.html`), else from the file
  name (`2022-01-24-NW202201242257831752.md`); a post with neither is skipped ("no id").
- category: the medium's slug from the tag `<medium>新闻` (categories.py), because the legacy slug
  was made by xpinyin and a category page's title is not always its medium (README, "Not found");
  the legacy channels that were no medium (`emnews`) keep their slug.
- date: Jekyll's `YYYY-MM-DD HH:MM:SS +0800`; a date without offset is Beijing time (the script
  wrote +0800 from its second version on); an empty date (`date:  +0800`) is no date.

The same article was often written more than once (an emnews post and an NW post, or one file name
in both folders). Files are read twice: a first pass finds each file's article_id, the second reads
them in article_id order, so the copies of one article meet and are merged into one item before
dedupe sees it (`merge_legacy_posts`). Only (article_id, path) pairs stay in memory, never bodies.
Re-running the import changes nothing: the merged raw item hashes the same (dedupe.raw_hash).
"""

from __future__ import annotations

import html
import itertools
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from aggregator import dedupe, identity
from aggregator.categories import category_for_medium, media_by_slug, medium_from_tag, slug_for_legacy
from aggregator.config import Config, SourceConfig
from aggregator.models import Candidate, ItemChange, RawItem, StoredItem, UpdateOutcome
from aggregator.storage import Storage
from aggregator.update import build_item

#: the source name imported items remember (Item.sources) and their raw hash is kept under
IMPORT_SOURCE_NAME = "jekyll-import"
#: legacy categories that were channels, not media: slug → title (get_emnews.py wrote both literally)
LEGACY_CHANNELS = {"emnews": "东财滚动新闻"}
#: the legacy NW source links point at the author's proxy of eastmoney's share page; an earlier
#: version of get_emnews.py linked the original host directly
LEGACY_PROXY_HOSTS = {"finews.zning.xyz": "choicewzp1.eastmoney.com"}
#: how many merged articles are cleaned and written per storage transaction
BATCH_SIZE = 500
#: skipped files listed in the report by name; the rest are only counted
MAX_LISTED_SKIPS = 100

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


class ImportProgress(Protocol):
    """What the CLI's progress display offers (aggregator.progress.Progress)."""

    def advance(self, outcome: UpdateOutcome) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did; `skipped` lists the first MAX_LISTED_SKIPS, `skipped_count` counts all."""

    files: int = 0
    articles: int = 0
    inserted: int = 0
    updated: int = 0
    linked: int = 0
    unchanged: int = 0
    skipped_count: int = 0
    skipped: tuple[Skipped, ...] = ()

    def summary(self) -> str:
        lines = [(
            f"import-jekyll: {self.files} files, {self.articles} articles: {self.inserted} new, "
            f"{self.updated} updated, {self.linked} linked to stored items, {self.unchanged} unchanged, "
            f"{self.skipped_count} files skipped"
        )]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped]
        if self.skipped_count > len(self.skipped):
            lines.append(f"  … and {self.skipped_count - len(self.skipped)} more skipped files")
        return "\n".join(lines)


def read_legacy_post(path: Path, taken: Mapping[str, str] | None = None) -> LegacyPost | Skipped:
    """One post file; Skipped for unreadable text or front matter, or no article id.

    `taken` (slug → medium) keeps a medium out of a category another medium owns (categories.py).
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
        category = category_for_medium(medium, taken)
    else:
        return Skipped(path, "unreadable front matter: no categories or tags")
    return LegacyPost(
        path=path, article_id=article_id, title=_unquote(front.get("title", "")), published=published,
        categories=(category,), medium=medium, tags=(tag,) if tag else (), html=article_html, summary=summary,
        source_link=_original_link(source_link),
    )


def iter_legacy_posts(
    paths: Iterable[Path], taken: Mapping[str, str] | None = None
) -> Iterator[LegacyPost | Skipped]:
    """Every post under `paths` (files or folders): Skipped files first, then posts in article_id order."""
    keyed: list[tuple[str, str]] = []
    for path in _post_files(paths):
        post = read_legacy_post(path, taken)
        if isinstance(post, Skipped):
            yield post
        else:
            keyed.append((post.article_id, str(path)))
    keyed.sort()
    for _, name in keyed:
        yield read_legacy_post(Path(name), taken)


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


def prefer_live_content(change: ItemChange, stored: StoredItem | None) -> ItemChange:
    """An import never overwrites an item a live source stored: it only adds its categories (a link)."""
    is_live = stored is not None and IMPORT_SOURCE_NAME not in stored.raw_hashes and bool(stored.raw_hashes)
    if change.action == "update" and is_live:
        return ItemChange("link", change.item, change.source_name, change.raw_hash)
    return change


def import_legacy_posts(
    storage: Storage,
    config: Config,
    paths: Iterable[Path],
    *,
    progress: ImportProgress | None = None,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Import every post under `paths`; the caller holds the store's writer lock.

    The categories of feeds.toml titled `<medium>新闻` are taken by their medium: a legacy medium
    with the same slug is filed apart (categories.category_for_medium).
    """
    now = now or datetime.now(UTC)
    source = SourceConfig(name=IMPORT_SOURCE_NAME, url="http://finews.withounder.com/", categories="auto")
    counts: Counter[str] = Counter()
    skipped: list[Skipped] = []
    batch: list[LegacyPost] = []
    taken = media_by_slug({slug: category.title for slug, category in config.categories.items()})
    stream = iter_legacy_posts(paths, taken)
    try:
        for article_id, group in itertools.groupby(stream, key=_article_id_of):
            copies = list(group)
            counts["files"] += len(copies)
            if article_id is None:
                counts["skipped"] += len(copies)
                skipped += [c for c in copies if isinstance(c, Skipped)][: MAX_LISTED_SKIPS - len(skipped)]
                continue
            batch.append(merge_legacy_posts([c for c in copies if isinstance(c, LegacyPost)]))
            if len(batch) >= batch_size:
                counts += _write_batch(storage, source, batch, now, progress, counts["articles"])
                batch = []
        if batch:
            counts += _write_batch(storage, source, batch, now, progress, counts["articles"])
    finally:
        if progress is not None:
            progress.close()
    return ImportReport(
        files=counts["files"], articles=counts["articles"], inserted=counts["insert"], updated=counts["update"],
        linked=counts["link"], unchanged=counts["unchanged"], skipped_count=counts["skipped"], skipped=tuple(skipped),
    )


def _article_id_of(post: LegacyPost | Skipped) -> str | None:
    return post.article_id if isinstance(post, LegacyPost) else None


def _write_batch(
    storage: Storage, source: SourceConfig, posts: Sequence[LegacyPost], now: datetime,
    progress: ImportProgress | None, articles_before: int,
) -> Counter[str]:
    """Clean, plan and store one batch of merged posts; counts of articles and of each action."""
    started = time.monotonic()
    candidates = []
    for post in posts:
        raw = post.to_raw_item()
        candidates.append(Candidate(post.article_id, IMPORT_SOURCE_NAME, frozenset(post.categories), raw,
                                    dedupe.raw_hash(raw)))
    stored = storage.get_stored_items([c.article_id for c in candidates])
    to_clean = [c for c in candidates if dedupe.needs_cleaning(c, stored.get(c.article_id))]
    cleaned = [(c, build_item(c, source, now)) for c in to_clean]
    changes = [
        prefer_live_content(change, stored.get(change.item.article_id))
        for change in dedupe.plan_changes(cleaned, stored, now)
    ]
    writes = [c for c in changes if c.action != "unchanged"]
    if writes:
        storage.apply_update(writes, None)
    counts: Counter[str] = Counter(c.action for c in writes)
    counts["articles"] = len(posts)
    counts["unchanged"] = len(posts) - len(writes)
    if progress is not None:
        status: Literal["new", "updated", "unchanged"] = (
            "new" if counts["insert"] else "updated" if counts["update"] or counts["link"] else "unchanged"
        )
        progress.advance(UpdateOutcome(
            f"{IMPORT_SOURCE_NAME} ({articles_before + len(posts)} articles)", status, inserted=counts["insert"],
            updated=counts["update"], unchanged=counts["unchanged"], duration_seconds=time.monotonic() - started,
            changed_categories=frozenset(cat for c in writes for cat in c.item.categories),
        ))
    return counts


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
    if not link or not link.lower().startswith(("http://", "https://")):
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

