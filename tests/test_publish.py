"""publish_categories against a real store (SQLite and PostgreSQL): change-only writes, archives, OPML, index."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

import aggregator
from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.errors import PublishError, PublishFailures
from aggregator.models import Item, ItemChange
from aggregator.publish.layout import output_dir_of
from aggregator.publish.run import publish_categories
from aggregator.storage import Storage

ATOM_RNG = Path(aggregator.__file__).parent / "schemas" / "atom.rng"
BASE_URL = "https://news.example/"
T0 = datetime(2022, 1, 23, 16, 0, tzinfo=UTC)


def make_config(tmp_path: Path, **settings: object) -> Config:
    return Config(
        path=tmp_path / "feeds.toml",
        settings=Settings(**{"base_url": BASE_URL, "output_dir": Path("feeds"), "max_items_per_feed": 5,
                             **settings}),  # type: ignore[arg-type]
        categories={
            "nantongribao": CategoryConfig(title="南通日报新闻", description="南通日报"),
            "yangzhou": CategoryConfig(title="扬州日报新闻"),
        },
        sources=(
            SourceConfig(name="nt", url="https://example.org/nt.xml", categories=("nantongribao",)),
            SourceConfig(name="yz", url="https://example.org/yz.xml", categories=("yangzhou",)),
        ),
    )


def make_item(n: int, category: str = "nantongribao", **changes: object) -> Item:
    item = Item(
        article_id=f"NW2022012422578{n:05d}",
        title=f"新闻 {n}",
        url=f"https://finews.example/a/{n}.html",
        html=f"<p>正文 {n}</p>",
        published=T0 + timedelta(minutes=n),
        updated=T0 + timedelta(minutes=n),
        categories=frozenset({category}),
        sources=frozenset({"nt" if category == "nantongribao" else "yz"}),
        content_hash=f"hash-{n}",
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


def store(storage: Storage, items: list[Item], action: str = "insert") -> None:
    storage.apply_update(
        [ItemChange(action, item, min(item.sources), item.content_hash) for item in items],  # type: ignore[arg-type]
        None,
    )


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(directory)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def feed_file(config: Config, name: str) -> Path:
    return output_dir_of(config) / f"{name}.atom"


def test_publishing_writes_every_feed_its_twins_the_opml_and_the_index(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(1), make_item(2, "yangzhou")])
    assert publish_categories(storage, config) == ["nantongribao", "yangzhou"]
    out = tmp_path / "feeds"
    for name in ("nantongribao", "yangzhou", "all"):
        atom = (out / f"{name}.atom").read_bytes()
        assert gzip.decompress((out / f"{name}.atom.gz").read_bytes()) == atom
        assert json.loads(gzip.decompress((out / f"{name}.json.gz").read_bytes())) == json.loads(
            (out / f"{name}.json").read_bytes()
        )
    assert {e.title for e in feedparser.parse((out / "all.atom").read_bytes()).entries} == {"新闻 1", "新闻 2"}
    assert (out / "feeds.opml").exists() and (out / "index.html").exists()


def test_publishing_again_without_changes_rewrites_nothing(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(n) for n in range(23)] + [make_item(100, "yangzhou")])
    publish_categories(storage, config)
    before = snapshot(tmp_path / "feeds")
    assert publish_categories(storage, config) == []
    assert publish_categories(storage, config, ["nantongribao"]) == []
    assert snapshot(tmp_path / "feeds") == before


def test_a_changed_item_moves_updated_of_its_feed_only(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(1), make_item(2), make_item(3, "yangzhou")])
    publish_categories(storage, config)
    yangzhou_before = snapshot(tmp_path / "feeds")["yangzhou.atom"]
    feed_before = feedparser.parse(feed_file(config, "nantongribao").read_bytes()).feed.updated

    edited = make_item(2, title="新闻 2（更正）", updated=T0 + timedelta(days=2), content_hash="hash-2b")
    store(storage, [edited], action="update")
    assert publish_categories(storage, config, ["nantongribao"]) == ["nantongribao"]

    parsed = feedparser.parse(feed_file(config, "nantongribao").read_bytes())
    assert parsed.feed.updated != feed_before
    assert parsed.feed.updated == "2022-01-26T00:00:00+08:00"
    assert [e.title for e in parsed.entries].count("新闻 2（更正）") == 1
    assert len(parsed.entries) == 2
    assert snapshot(tmp_path / "feeds")["yangzhou.atom"] == yangzhou_before


def walk_archive(config: Config, name: str) -> list[str]:
    """Entry ids from the subscription document back through every prev-archive link, in order read."""
    out = output_dir_of(config)
    schema = etree.RelaxNG(etree.parse(str(ATOM_RNG)))
    path: Path | None = feed_file(config, name)
    seen_ids: list[str] = []
    for _ in range(100):  # bounded: a loop in the links must fail the test, not hang it
        if path is None:
            return seen_ids
        document = path.read_bytes()
        assert schema.validate(etree.fromstring(document)), schema.error_log
        parsed = feedparser.parse(document)
        assert not parsed.bozo
        seen_ids += [entry.id for entry in parsed.entries]
        prev = [link.href for link in parsed.feed.links if link.rel == "prev-archive"]
        path = out / prev[0].removeprefix(f"{BASE_URL}feeds/") if prev else None
    raise AssertionError("prev-archive links do not end")


def test_following_prev_archive_reaches_every_item_exactly_once(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    items = [make_item(n) for n in range(23)]
    store(storage, items)
    publish_categories(storage, config)
    walked = walk_archive(config, "nantongribao")
    assert len(walked) == 23
    assert set(walked) == {f"tag:aggregator,2022:{item.article_id}" for item in items}
    assert len(feedparser.parse(feed_file(config, "nantongribao").read_bytes()).entries) == 5
    assert sorted(walk_archive(config, "all")) == sorted(walked)


def test_sealed_archive_pages_never_change_while_the_archive_grows(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(n) for n in range(23)])
    publish_categories(storage, config)
    archive = tmp_path / "feeds" / "archive" / "nantongribao"
    sealed_before = {page: snapshot(archive)[f"{page}.atom"] for page in (1, 2, 3)}
    page4_links = {link.rel for link in feedparser.parse((archive / "4.atom").read_bytes()).feed.links}
    assert "next-archive" not in page4_links

    store(storage, [make_item(0, title="新闻 0（更正）", content_hash="hash-0b")], action="update")
    store(storage, [make_item(n) for n in range(23, 33)])
    publish_categories(storage, config)

    after = snapshot(archive)
    assert {page: after[f"{page}.atom"] for page in (1, 2, 3)} == sealed_before
    page4 = feedparser.parse((archive / "4.atom").read_bytes())
    assert {link.rel: link.href for link in page4.feed.links}["next-archive"].endswith("/archive/nantongribao/5.atom")
    assert len(walk_archive(config, "nantongribao")) == 33


def test_a_pass_renders_only_the_head_and_the_archive_pages_its_items_fall_in(
    tmp_path: Path, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aggregator.publish.run as publish

    config = make_config(tmp_path)
    store(storage, [make_item(n) for n in range(23)])
    publish_categories(storage, config)  # 5 per page: head 18-22, pages 1-3 sealed, page 4 open (15-17)
    rendered: list[str] = []
    real_render = publish.render_atom

    def counting_render(document: Any, items: Any, config: Config, *args: Any) -> bytes:
        rendered.append(document.self_url.removeprefix(f"{BASE_URL}feeds/"))
        return real_render(document, items, config, *args)

    monkeypatch.setattr(publish, "render_atom", counting_render)
    before = snapshot(tmp_path / "feeds")

    store(storage, [make_item(n) for n in range(23, 25)])  # 2 new items: 2 old ones move onto page 4
    assert publish_categories(storage, config, ["nantongribao"]) == ["nantongribao"]
    assert sorted(rendered) == ["all.atom", "archive/all/4.atom", "archive/nantongribao/4.atom",
                                "nantongribao.atom"]
    after = snapshot(tmp_path / "feeds")
    rewritten = {name for name in after if before.get(name) != after[name]}
    pages = {name for name in rewritten if name.startswith(("a/", "c/", "."))}  # the website (issue 15)
    assert {name for name in pages if name.startswith("a/")} == {
        f"a/{make_item(n).article_id}.html{gz}" for n in (23, 24) for gz in ("", ".gz")}
    assert rewritten - pages == {"nantongribao.atom", "nantongribao.atom.gz", "nantongribao.json", "nantongribao.json.gz",
                         "archive/nantongribao/4.atom", "archive/nantongribao/4.atom.gz", "all.atom", "all.atom.gz",
                         "all.json", "all.json.gz", "archive/all/4.atom", "archive/all/4.atom.gz", "index.html",
                         "index.html.gz"}

    rendered.clear()
    store(storage, [make_item(n) for n in range(25, 27)])  # page 4 is full: page 5 opens, page 4 gets its link
    publish_categories(storage, config, ["nantongribao"])
    assert sorted(rendered) == ["all.atom", "archive/all/4.atom", "archive/all/5.atom", "archive/nantongribao/4.atom",
                                "archive/nantongribao/5.atom", "nantongribao.atom"]


def test_a_new_page_size_re_renders_the_archive_and_removes_pages_past_the_end(
    tmp_path: Path, storage: Storage
) -> None:
    store(storage, [make_item(n) for n in range(23)])
    publish_categories(storage, make_config(tmp_path))
    archive = tmp_path / "feeds" / "archive" / "nantongribao"
    assert (archive / "4.atom").exists()

    bigger_pages = make_config(tmp_path, max_items_per_feed=10)
    publish_categories(storage, bigger_pages)
    assert sorted(p.name for p in archive.iterdir() if not p.name.startswith(".")) == [
        "1.atom", "1.atom.gz", "2.atom", "2.atom.gz",
    ]
    assert len(feedparser.parse((archive / "1.atom").read_bytes()).entries) == 10
    walked = walk_archive(bigger_pages, "nantongribao")
    assert sorted(walked) == sorted(f"tag:aggregator,2022:{make_item(n).article_id}" for n in range(23))


def test_a_new_base_url_re_renders_sealed_pages_with_their_new_links(tmp_path: Path, storage: Storage) -> None:
    store(storage, [make_item(n) for n in range(23)])
    publish_categories(storage, make_config(tmp_path))
    moved = make_config(tmp_path, base_url="https://mirror.example/news/")
    publish_categories(storage, moved)
    page1 = feedparser.parse((tmp_path / "feeds" / "archive" / "nantongribao" / "1.atom").read_bytes())
    assert {link.rel: link.href for link in page1.feed.links}["self"] == (
        "https://mirror.example/news/feeds/archive/nantongribao/1.atom"
    )


@pytest.mark.parametrize(
    "record",
    ["3\n", "{not json", '{"sealed_pages": 3}', f'{{"sealed_pages": "3", "per_page": 5, "base_url": "{BASE_URL}"}}'],
    ids=["bare-number", "not-json", "missing-keys", "wrong-type"],
)
def test_an_unreadable_seal_record_re_renders_the_archive_with_a_warning(
    tmp_path: Path, storage: Storage, caplog: pytest.LogCaptureFixture, record: str
) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(n) for n in range(23)])
    publish_categories(storage, config)
    archive = tmp_path / "feeds" / "archive" / "nantongribao"
    page1 = archive / "1.atom"
    page1.write_bytes(b"<feed>damaged</feed>")
    (archive / ".sealed-pages").write_text(record)
    with caplog.at_level(logging.WARNING, logger="aggregator.publish"):
        publish_categories(storage, config)
    assert "unreadable; re-rendering every archive page" in caplog.text
    assert len(feedparser.parse(page1.read_bytes()).entries) == 5
    assert len(walk_archive(config, "nantongribao")) == 23


def test_a_deleted_sealed_page_is_written_again(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(n) for n in range(23)])
    publish_categories(storage, config)
    page = tmp_path / "feeds" / "archive" / "nantongribao" / "1.atom"
    original = page.read_bytes()
    page.unlink()
    publish_categories(storage, config)
    assert page.read_bytes() == original


def test_opml_lists_every_feed_for_one_click_import(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(1), make_item(2, "taizhou")])  # taizhou: filed by medium, not configured
    publish_categories(storage, config)
    opml = ET.fromstring((tmp_path / "feeds" / "feeds.opml").read_bytes())
    assert opml.get("version") == "2.0"
    outlines = [(o.get("text"), o.get("type"), o.get("xmlUrl")) for o in opml.iter("outline")]
    assert outlines == [
        ("南通日报新闻", "rss", f"{BASE_URL}feeds/nantongribao.atom"),
        ("扬州日报新闻", "rss", f"{BASE_URL}feeds/yangzhou.atom"),
        ("taizhou", "rss", f"{BASE_URL}feeds/taizhou.atom"),
        ("全部新闻", "rss", f"{BASE_URL}feeds/all.atom"),
    ]
    assert feed_file(config, "taizhou").exists()


def test_a_category_id_unfit_for_a_url_is_skipped_with_a_warning(
    tmp_path: Path, storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(1), make_item(2, "../escape"), make_item(3, "all")])
    with caplog.at_level(logging.WARNING, logger="aggregator.publish"):
        assert publish_categories(storage, config) == ["nantongribao", "yangzhou"]
    assert "cannot be published" in caplog.text
    assert sorted(p.name for p in (tmp_path / "feeds").glob("*.atom")) == [
        "all.atom", "nantongribao.atom", "yangzhou.atom",
    ]
    assert not (tmp_path / "escape.atom").exists()


def test_an_absolute_output_dir_is_used_as_given(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path, output_dir=tmp_path / "elsewhere" / "feeds")
    store(storage, [make_item(1)])
    publish_categories(storage, config)
    assert (tmp_path / "elsewhere" / "feeds" / "nantongribao.atom").exists()


def test_published_files_are_readable_by_other_users(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(1)])
    publish_categories(storage, config)
    assert feed_file(config, "nantongribao").stat().st_mode & 0o777 == 0o644


def test_an_unwritable_output_dir_is_a_publish_error(tmp_path: Path, storage: Storage) -> None:
    (tmp_path / "feeds").write_text("a file where the folder should be")
    store(storage, [make_item(1)])
    with pytest.raises(PublishFailures, match="publish: cannot write") as caught:
        publish_categories(storage, make_config(tmp_path))
    assert isinstance(caught.value.__cause__, PublishError)
    assert isinstance(caught.value.__cause__.__cause__, OSError)
    assert caught.value.failed == ("nantongribao", "yangzhou", "all", "feeds.opml", "pages")


# --- fault isolation (issue 10) -----------------------------------------------------------------------


def test_control_characters_from_sources_never_make_a_published_document_invalid(
    tmp_path: Path, storage: Storage
) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(1, url="https://finews.example/a/\u00011.html", title="新闻\u0001 1",
                             author="记者\u0008", summary="摘\ufffe要"),
                    make_item(2, category="rugao", sources=frozenset({"nt\u0001"}))])
    storage.add_category_titles({"rugao": "如皋\u0001日报新闻"})  # a medium name with a control character
    publish_categories(storage, config)
    out = output_dir_of(config)
    for path in [*out.glob("*.atom"), *out.glob("archive/*/*.atom"), out / "feeds.opml"]:
        etree.fromstring(path.read_bytes())  # well-formed XML, or this raises
    atom = feed_file(config, "nantongribao").read_text(encoding="utf-8")
    assert 'href="https://finews.example/a/1.html"' in atom and "新闻 1" in atom
    assert "如皋日报新闻" in (out / "feeds.opml").read_text(encoding="utf-8")
    entry = json.loads((out / "nantongribao.json").read_text(encoding="utf-8"))["items"][0]
    assert (entry["external_url"], entry["title"], entry["authors"]) == (
        "https://finews.example/a/1.html", "新闻 1", [{"name": "记者"}])


def test_a_category_that_fails_to_publish_fails_alone_and_stays_owed_until_published(
    tmp_path: Path, storage: Storage
) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(1), make_item(2, category="yangzhou")])
    assert set(storage.owed_categories()) == {"nantongribao", "yangzhou"}
    blocker = feed_file(config, "yangzhou")
    blocker.mkdir(parents=True)  # the feed's file cannot be written: a folder is in its place
    with pytest.raises(PublishFailures) as caught:
        publish_categories(storage, config, ["nantongribao", "yangzhou"])
    assert caught.value.failed == ("yangzhou",)
    assert feed_file(config, "nantongribao").exists() and (output_dir_of(config) / "feeds.opml").exists()
    assert set(storage.owed_categories()) == {"yangzhou"}
    blocker.rmdir()
    assert publish_categories(storage, config, sorted(storage.owed_categories())) == ["yangzhou"]
    assert storage.owed_categories() == {}


def test_a_change_committed_while_a_publish_reads_stays_owed(tmp_path: Path, storage: Storage) -> None:
    config = make_config(tmp_path)
    store(storage, [make_item(1)])

    class ChangingDuringPublish:
        """The store, with a poll committing a change the moment the publish starts reading items."""

        def __init__(self, inner: Storage) -> None:
            self._inner = inner
            self._changed = False

        def __getattr__(self, name: str) -> object:
            return getattr(self._inner, name)

        def count_items(self, category: str | None = None) -> int:
            if not self._changed:
                self._changed = True
                store(self._inner, [make_item(2)])
            return self._inner.count_items(category)

    publish_categories(ChangingDuringPublish(storage), config, ["nantongribao"])  # type: ignore[arg-type]
    assert set(storage.owed_categories()) == {"nantongribao"}
