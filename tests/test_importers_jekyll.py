"""importers/jekyll.py: the legacy mirror's posts imported into real storage (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator import dedupe
from aggregator.categories import category_for_medium
from aggregator.config.load import Config, SourceConfig, parse_config
from aggregator.importers.jekyll import ImportReport, import_legacy_posts
from aggregator.importers.jekyll_posts import IMPORT_SOURCE_NAME, Skipped
from aggregator.items import build_item
from aggregator.models import Candidate, ItemChange, RawItem
from aggregator.ops.progress import ProgressStep
from aggregator.storage import Storage

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
SEED_ID = "NW202201242257831752"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config("[settings]\n", tmp_path / "feeds.toml", {})


def _manifest(legacy_posts_dir: Path) -> dict[str, set[str]]:
    """article id (normalised by hand, not by the reader) → categories, from the corpus MANIFEST."""
    categories: dict[str, set[str]] = defaultdict(set)
    with (legacy_posts_dir / "MANIFEST.tsv").open(encoding="utf-8") as manifest:
        for row in csv.DictReader(manifest, delimiter="\t"):
            digits = row["infoCode_or_id"].removeprefix("NW")
            if digits.isdigit():
                categories["NW" + digits].add(row["category"])
    return categories


def _front_matter(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8").lstrip("\n")
    head = text.split("\n---", 1)[0]
    return dict(re.findall(r'^(\w+): "?(.*?)"?$', head, re.MULTILINE))


def test_import_yields_one_item_per_article_with_category_title_date_and_clean_body(
    legacy_posts_dir: Path, storage: Storage, config: Config
) -> None:
    report = import_legacy_posts(storage, config, [legacy_posts_dir], now=NOW)
    expected = _manifest(legacy_posts_dir)
    assert len(expected) == 47
    assert (report.articles, report.inserted, storage.count_items()) == (47, 47, 47)
    assert {s.path.name for s in report.skipped} == {"README.md", "_posts__2021-12-01-init.md"}
    for path in sorted(legacy_posts_dir.glob("*.md")):
        digits = path.stem.rsplit("-", 1)[-1].removeprefix("NW")
        if not digits.isdigit():
            continue
        item = storage.get_item("NW" + digits)
        assert item is not None, path.name
        assert item.categories == expected["NW" + digits], path.name
        front = _front_matter(path)
        if front["title"]:
            assert item.title == front["title"], path.name
        if front["date"].strip() != "+0800":
            stamp = front["date"] if front["date"].endswith("+0800") else front["date"] + " +0800"
            assert item.published == datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S %z"), path.name
        assert item.html.strip(), path.name
        for residue in ("EM_StockImg", "display:none", "webquoteklinepic", "keytip", "返回首页", "finews.withounder"):
            assert residue not in item.html, (path.name, residue)
        assert item.sources == {IMPORT_SOURCE_NAME}
    titles = storage.category_titles()
    assert (titles["nantongribao"], titles["emnews"]) == ("南通日报新闻", "东财滚动新闻")
    assert set(titles) == set().union(*expected.values()) - {"sitenews"}


def test_importing_twice_changes_nothing(legacy_posts_dir: Path, storage: Storage, config: Config) -> None:
    import_legacy_posts(storage, config, [legacy_posts_dir], now=NOW)
    ids = list(_manifest(legacy_posts_dir))
    before = {article_id: storage.get_item(article_id) for article_id in ids}
    again = import_legacy_posts(storage, config, [legacy_posts_dir], now=NOW + timedelta(days=1))
    assert (again.inserted, again.updated, again.linked, again.unchanged) == (0, 0, 0, 47)
    assert {article_id: storage.get_item(article_id) for article_id in ids} == before


def test_import_never_overwrites_an_item_a_live_source_stored(
    legacy_posts_dir: Path, storage: Storage, config: Config
) -> None:
    live_source = SourceConfig(name="ntrb-live", url="http://127.0.0.1/list", categories=("jiangsu",))
    raw = RawItem(explicit_id=SEED_ID, title="live title", html="<p>live body</p>", published=NOW)
    candidate = Candidate(SEED_ID, live_source.name, frozenset({"jiangsu"}), raw, dedupe.raw_hash(raw))
    item = build_item(candidate, live_source.url, live_source.clean, NOW)
    storage.apply_update([ItemChange("insert", item, live_source.name, candidate.raw_hash)], None)
    report = import_legacy_posts(storage, config, [legacy_posts_dir], now=NOW)
    stored = storage.get_item(SEED_ID)
    assert stored is not None
    assert (stored.title, stored.html) == ("live title", "<p>live body</p>")
    assert stored.categories == {"jiangsu", "nantongribao"}
    assert stored.sources == {"ntrb-live", IMPORT_SOURCE_NAME}
    assert (report.inserted, report.linked) == (46, 1)


class _RecordingProgress:
    def __init__(self) -> None:
        self.steps: list[ProgressStep] = []
        self.closed = False

    def advance(self, step: ProgressStep) -> None:
        self.steps.append(step)

    def close(self) -> None:
        self.closed = True


def test_import_reports_progress_per_batch_and_closes_it(
    legacy_posts_dir: Path, storage: Storage, config: Config
) -> None:
    progress = _RecordingProgress()
    import_legacy_posts(storage, config, [legacy_posts_dir], progress=progress, now=NOW, batch_size=10)
    assert [s.inserted for s in progress.steps] == [10, 10, 10, 10, 7]
    assert progress.steps[-1].name == f"{IMPORT_SOURCE_NAME} (47 articles)"
    assert progress.closed


def test_import_of_many_files_streams_in_batches(tmp_path: Path, storage: Storage, config: Config) -> None:
    posts = tmp_path / "_posts"
    posts.mkdir()
    for n in range(1, 1201):
        article = f"2022010{n % 9 + 1}{n:010d}"
        (posts / f"2022-01-0{n % 9 + 1}-NW{article}.md").write_text(
            f'---\nlayout: post\ntitle: "第{n}条"\ndate: 2022-01-0{n % 9 + 1} 08:00:00 +0800\n'
            f"categories: nantongribao\ntags: 南通日报新闻\n---\n<p>正文 {n}</p>\n",
            encoding="utf-8",
        )
    report = import_legacy_posts(storage, config, [posts], now=NOW, batch_size=250)
    assert report == ImportReport(files=1200, articles=1200, inserted=1200)
    assert storage.count_items("nantongribao") == 1200


def test_medium_colliding_with_a_configured_category_is_filed_apart(tmp_path: Path, storage: Storage) -> None:
    config = parse_config('[categories.jinrongjie]\ntitle = "金融界新闻"\n', tmp_path / "feeds.toml", {})
    post = tmp_path / "2022-03-09-NW202203092280000009.md"
    post.write_text('---\ntitle: "金融街论坛开幕"\ndate: 2022-03-09 09:00:00 +0800\ncategories: jinrongjie\n'
                    "tags: 金融街新闻\n---\n<p>金融街论坛开幕。</p>\n", encoding="utf-8")
    import_legacy_posts(storage, config, [post], now=NOW)
    item = storage.get_item("NW202203092280000009")
    assert item is not None
    [category] = item.categories
    assert category.startswith("jinrongjie-")


def test_report_summary_names_counts_and_skipped_files(tmp_path: Path) -> None:
    report = ImportReport(files=3, articles=2, inserted=1, unchanged=1, skipped_count=1,
                          skipped=(Skipped(tmp_path / "init.md", "no article id"),))
    assert report.summary().splitlines() == [
        ("import-jekyll: 3 files, 2 articles: 1 new, 0 updated, 0 linked to stored items, 1 unchanged, "
         "1 files skipped"),
        f"  skipped {tmp_path / 'init.md'}: no article id",
    ]


def _write_post(folder: Path, article_id: str, tag: str, category: str = "legacy") -> None:
    (folder / f"2022-03-09-{article_id}.md").write_text(
        f'---\ntitle: "{tag}的新闻"\ndate: 2022-03-09 09:00:00 +0800\ncategories: {category}\ntags: {tag}\n---\n'
        f"<p>{tag}正文。</p>\n", encoding="utf-8")


def test_colliding_media_in_one_import_are_filed_apart_and_new_categories_get_titles(
    tmp_path: Path, storage: Storage, config: Config
) -> None:
    _write_post(tmp_path, "NW202203092280000001", "金融界新闻", "jinrongjie")
    _write_post(tmp_path, "NW202203092280000002", "金融街新闻", "jinrongjie")
    _write_post(tmp_path, "202203092280000003", "东财滚动新闻", "emnews")
    import_legacy_posts(storage, config, [tmp_path], now=NOW)
    categories = [storage.get_item(f"NW20220309228000000{n}").categories for n in (1, 2, 3)]  # type: ignore[union-attr]
    assert categories[0] == {"jinrongjie"} and categories[2] == {"emnews"}
    [apart] = categories[1]
    assert re.fullmatch(r"jinrongjie-[0-9a-f]{4}", apart)
    assert storage.category_titles() == {"jinrongjie": "金融界新闻", apart: "金融街新闻", "emnews": "东财滚动新闻"}


def test_import_files_a_medium_where_a_live_source_filed_it(tmp_path: Path, storage: Storage, config: Config) -> None:
    # a live "auto" source met 金融街 after 金融界 and filed it apart; its learnt title says so
    live_slug = category_for_medium("金融街", {"jinrongjie": "金融界"})
    storage.add_category_titles({"jinrongjie": "金融界新闻", live_slug: "金融街新闻"})
    _write_post(tmp_path, "NW202203092280000002", "金融街新闻", "jinrongjie")
    report = import_legacy_posts(storage, config, [tmp_path], now=NOW)
    item = storage.get_item("NW202203092280000002")
    assert report.inserted == 1 and item is not None and item.categories == {live_slug}
    assert storage.category_titles() == {"jinrongjie": "金融界新闻", live_slug: "金融街新闻"}
