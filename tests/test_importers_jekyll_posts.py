"""importers/jekyll_posts.py: the legacy mirror's posts read (tests/data/jekyll, ../shared) and merged per article."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aggregator.importers.jekyll_posts import (
    LegacyPost,
    Skipped,
    iter_legacy_posts,
    merge_legacy_posts,
    read_legacy_post,
)
from tests.conftest import DATA_DIR

BEIJING = timezone(timedelta(hours=8))
CASES_DIR = DATA_DIR / "jekyll"
SEED_ID = "NW202201242257831752"


def _case(name: str) -> Path:
    [path] = (CASES_DIR / name).iterdir()
    return path


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
