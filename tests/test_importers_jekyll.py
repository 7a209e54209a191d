"""importers/jekyll.py: the legacy mirror's posts read, merged per article, imported into real storage."""

from __future__ import annotations

import csv
import itertools
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from aggregator import dedupe
from aggregator.config import Config, SourceConfig, parse_config
from aggregator.importers.jekyll import (
    IMPORT_SOURCE_NAME,
    ImportReport,
    LegacyPost,
    Skipped,
    import_legacy_posts,
    iter_legacy_posts,
    merge_legacy_posts,
    read_legacy_post,
)
from aggregator.models import Candidate, ItemChange, RawItem, UpdateOutcome
from aggregator.storage import Storage, open_storage
from aggregator.update import build_item
from tests.conftest import DATA_DIR

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))
CASES_DIR = DATA_DIR / "jekyll"
SEED_ID = "NW202201242257831752"


def _case(name: str) -> Path:
    [path] = (CASES_DIR / name).iterdir()
    return path


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config("[settings]\n", tmp_path / "feeds.toml", {})


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = open_storage(str(tmp_path / "store.db"))
    yield store
    store.close()


def test_post_with_unescaped_quotes_in_its_title_and_a_polyphone_legacy_slug() -> None:
    post = read_legacy_post(_case("title_with_unescaped_quotes_and_polyphone_slug"))
    assert isinstance(post, LegacyPost)
    assert post.title == '央行"降准"落地 释放长期资金'
    assert post.article_id == "NW202203012280000001"
    assert post.categories == ("chongqingchenbao",) and post.medium == "重庆晨报"
    assert post.published == datetime(2022, 3, 1, 8, 30, tzinfo=BEIJING)
    assert post.html == "<p>重庆晨报讯 央行宣布降准。</p>"
    # the legacy proxy host is replaced by the eastmoney host it mirrored
    assert post.source_link == "http://choicewzp1.eastmoney.com/html_News/NewsShare.html?infoCode=NW202203012280000001"


def test_post_with_crlf_lines_and_a_medium_holding_a_space_and_latin_letters() -> None:
    post = read_legacy_post(_case("crlf_medium_with_space_and_latin"))
    assert isinstance(post, LegacyPost)
    assert post.title == "21财经：长三角一体化再提速"
    assert post.categories == ("21shijijingjibaodao-21caijingapp",)
    assert post.medium == "21世纪经济报道 21财经APP"
    assert post.html == "<p>长三角一体化再提速。</p>"


def test_plain_text_digest_becomes_escaped_paragraphs_and_back_links_are_dropped() -> None:
    post = read_legacy_post(_case("plain_text_digest_and_two_line_back_links"))
    assert isinstance(post, LegacyPost)
    assert post.html == "<p>第一段 &lt;不是标签&gt; &amp; 符号。</p><p>第二段。</p>"
    assert post.categories == ("emnews",) and post.medium is None
    # no offset in the date: Beijing time, as the legacy script meant
    assert post.published == datetime(2022, 3, 7, 10, 0, tzinfo=BEIJING)
    assert post.source_link == "http://finance.eastmoney.com/news/1353,202203072280000007.html"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("front_matter_not_closed", "unreadable front matter: no closing ---"),
        ("date_unreadable", "unreadable front matter: date '昨天下午' is not YYYY-MM-DD HH:MM:SS +ZZZZ"),
        ("front_matter_yaml_block_list", "unreadable front matter: line 5 is not `key: value`"),
        ("site_post_without_id", "no article id in the source link or the file name"),
        ("not_utf8", "not UTF-8 text"),
    ],
)
def test_unreadable_post_is_skipped_with_its_reason(case: str, reason: str) -> None:
    path = _case(case)
    assert read_legacy_post(path) == Skipped(path, reason)


def test_seed_post_reads_as_the_legacy_mirror_wrote_it(seed_post: Path) -> None:
    post = read_legacy_post(seed_post)
    assert isinstance(post, LegacyPost)
    assert (post.article_id, post.categories, post.tags) == (SEED_ID, ("nantongribao",), ("南通日报新闻",))
    assert post.title == "聚焦可持续发展 中天科技全面启动绿色低碳制造行动"
    assert post.published == datetime(2022, 1, 24, 0, 48, 9, tzinfo=BEIJING)
    assert post.html.startswith('<p style="display:none;height:1px;overflow:hidden;"><br /></p><!-- EM_StockImg_Start -->')
    assert post.html.endswith('<p class="em_media">（文章来源：南通日报）</p>')


def test_copies_of_one_article_are_read_next_to_each_other(legacy_posts_dir: Path) -> None:
    ids = [p.article_id for p in iter_legacy_posts([legacy_posts_dir]) if isinstance(p, LegacyPost)]
    runs = [key for key, _ in itertools.groupby(ids)]
    assert len(runs) == len(set(ids))


def test_merged_copies_keep_the_complete_one_and_every_category(legacy_posts_dir: Path) -> None:
    names = ["_posts__-202205262391921712.md", "_posts__2022-05-26-202205262391921712.md",
             "old_post__2022-05-26-NW202205262391921712.md"]
    posts = [read_legacy_post(legacy_posts_dir / name) for name in names]
    assert all(isinstance(p, LegacyPost) for p in posts)
    merged = merge_legacy_posts([p for p in posts if isinstance(p, LegacyPost)])
    assert merged.categories == ("emnews", "shanghaizhengquanbao")
    assert merged.title == "国内首次！蔚来汽车启用这款“绿色”制冷液 哪些A股公司早有布局？"
    assert merged.published == datetime(2022, 5, 26, 0, 19, 55, tzinfo=BEIJING)
    assert merged.medium == "上海证券报"
    assert merged.path.name == "_posts__2022-05-26-202205262391921712.md"


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
    item = build_item(candidate, live_source, NOW)
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
        self.outcomes: list[UpdateOutcome] = []
        self.closed = False

    def advance(self, outcome: UpdateOutcome) -> None:
        self.outcomes.append(outcome)

    def close(self) -> None:
        self.closed = True


def test_import_reports_progress_per_batch_and_closes_it(
    legacy_posts_dir: Path, storage: Storage, config: Config
) -> None:
    progress = _RecordingProgress()
    import_legacy_posts(storage, config, [legacy_posts_dir], progress=progress, now=NOW, batch_size=10)
    assert [o.inserted for o in progress.outcomes] == [10, 10, 10, 10, 7]
    assert progress.outcomes[-1].source_name == f"{IMPORT_SOURCE_NAME} (47 articles)"
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
