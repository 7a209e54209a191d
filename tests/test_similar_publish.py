"""Same story, many papers, end to end: `aggregator poll` against the loopback server, then the feeds,
`aggregator similar` and `status --json` (issue 14)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from tests.conftest import shared_path
from tests.corpus_feeds import Post, read_post, rss
from tests.fixture_server import FixtureServer, Route
from tests.test_cli import ATOM_RNG, run_cli

SEED_FILE = "2022-01-24-NW202201242257831752.md"
ATOM = "{http://www.w3.org/2005/Atom}"
STORY_SCHEME = "tag:aggregator,2022:story"
NANTONG_ID, QUANZHOU_ID, CHONGQING_ID, WRAP_ID = (
    "NW202201242257831752", "NW202201242257999001", "NW202201242257999002", "NW202201242257999003")
MARKET_WRAP = (
    "<p>截至收盘，沪指涨0.52%，报3589.31点；深证成指涨0.87%，报14866.67点；创业板指涨1.21%，报3345.23点。</p>"
    "<p>沪深两市成交额11234亿元，北向资金全天净买入45.60亿元。板块方面，消费电子、半导体等板块涨幅居前。</p>"
)


def link_of(article_id: str) -> str:
    return f"http://finance.eastmoney.com/news/1345,{article_id.removeprefix('NW')}.html"


@dataclass
class Papers:
    config: Path
    output_dir: Path
    #: all.atom's only entry after the first paper's poll
    first_entry: etree._Element
    #: what `poll --all` printed
    summary: str

    def run(self, *args: str) -> str:
        result = run_cli(*args, "--config", str(self.config))
        assert result.returncode == 0, result.stderr
        return result.stdout

    def entries(self, feed: str) -> list[etree._Element]:
        root = etree.fromstring((self.output_dir / f"{feed}.atom").read_bytes())
        return list(root.iter(f"{ATOM}entry"))


def entry_ids(entries: list[etree._Element]) -> list[str]:
    return [e.findtext(f"{ATOM}id", "").rsplit(":", 1)[-1] for e in entries]


def story_terms(entry: etree._Element) -> list[str]:
    return [c.get("term", "") for c in entry.iter(f"{ATOM}category") if c.get("scheme") == STORY_SCHEME]


def related_links(entry: etree._Element) -> list[tuple[str, str]]:
    return [(link.get("href", ""), link.get("title", "")) for link in entry.iter(f"{ATOM}link")
            if link.get("rel") == "related"]


@pytest.fixture(scope="module")
def papers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Papers]:
    """南通日报 prints a story first; then 泉州晚报 and 重庆日报 reprint it with their own source line,
    editor and headline, and 重庆日报 prints a market wrap, a different story. Polled once per module:
    the tests only read what the two polls made."""
    server = FixtureServer().start()
    try:
        yield _poll_papers(tmp_path_factory.mktemp("papers"), server, shared_path("seed", SEED_FILE))
    finally:
        server.stop()


def _poll_papers(tmp_path: Path, feed_server: FixtureServer, seed_post: Path) -> Papers:
    seed = read_post(seed_post)
    nantong = replace(seed, link=link_of(NANTONG_ID))
    quanzhou = replace(seed, title="重磅！" + seed.title, link=link_of(QUANZHOU_ID),
                       html=seed.html.replace("（文章来源：南通日报）", "（文章来源：泉州晚报）") + "<p>责任编辑：王芳</p>")
    chongqing = replace(seed, title=seed.title + "｜重庆日报", link=link_of(CHONGQING_ID),
                        html="<p>本报讯（记者 李明 通讯员 张伟）</p>" + seed.html.replace("南通日报", "重庆日报"))
    wrap = Post("沪指涨0.52% 成交额11234亿元", seed.published, "chongqingribao", "", MARKET_WRAP, link_of(WRAP_ID))
    feed_server.routes.update({
        "/nantong.rss": Route(rss("南通日报", [nantong])),
        "/quanzhou.rss": Route(rss("泉州晚报", [quanzhou])),
        "/chongqing.rss": Route(rss("重庆日报", [chongqing, wrap])),
    })
    text = ["[settings]", 'store = "data/aggregator.db"', 'output_dir = "public"', "allow_private_networks = true",
            'base_url = "https://news.example.org/"', 'per_host_delay = "10ms"', 'timeout = "5s"', ""]
    for category, title, mode in [("nantongribao", "南通日报新闻", None), ("quanzhouwanbao", "泉州晚报新闻", "collapse"),
                                  ("chongqingribao", "重庆日报新闻", "keep")]:
        text += [f"[categories.{category}]", f'title = "{title}"'] + ([f'similar = "{mode}"'] if mode else []) + [""]
    for name, category in [("nantong", "nantongribao"), ("quanzhou", "quanzhouwanbao"), ("chongqing", "chongqingribao")]:
        text += ["[[sources]]", f'name = "{name}"', f'url = "{feed_server.url(f"/{name}.rss")}"',
                 f'categories = ["{category}"]', ""]
    config = tmp_path / "feeds.toml"
    config.write_text("\n".join(text), encoding="utf-8")
    papers = Papers(config, tmp_path / "public", etree.Element("none"), "")
    papers.run("poll", "--source", "nantong")
    [papers.first_entry] = papers.entries("all")
    papers.summary = papers.run("poll", "--all")
    return papers


def test_all_feed_collapses_a_reprinted_story_to_its_first_item_listing_the_other_papers(papers: Papers) -> None:
    before, summary = papers.first_entry, papers.summary

    entries = papers.entries("all")
    assert sorted(entry_ids(entries)) == sorted([NANTONG_ID, WRAP_ID])
    story = next(e for e in entries if entry_ids([e]) == [NANTONG_ID])
    content = story.findtext(f"{ATOM}content", "")
    assert "同时刊登于：" in content
    assert f'<a href="{link_of(QUANZHOU_ID)}">泉州晚报</a>' in content
    assert f'<a href="{link_of(CHONGQING_ID)}">重庆日报</a>' in content
    assert sorted(related_links(story)) == [(link_of(QUANZHOU_ID), "泉州晚报"), (link_of(CHONGQING_ID), "重庆日报")]
    # the story grew: the representative's entry moves, and the first paper's feed was republished
    assert datetime.fromisoformat(story.findtext(f"{ATOM}updated", "")) > datetime.fromisoformat(
        before.findtext(f"{ATOM}updated", ""))
    assert "nantongribao" in summary.rsplit("republished:", 1)[1]
    wrap = next(e for e in entries if entry_ids([e]) == [WRAP_ID])
    assert "同时刊登于" not in wrap.findtext(f"{ATOM}content", "") and not related_links(wrap)


def test_keep_marks_every_item_of_a_story_and_collapse_lists_the_others_in_a_category(papers: Papers) -> None:
    chongqing = papers.entries("chongqingribao")  # keep (set), like every category by default
    assert sorted(entry_ids(chongqing)) == sorted([CHONGQING_ID, WRAP_ID])
    marked = {entry_ids([e])[0]: story_terms(e) for e in chongqing}
    assert marked == {CHONGQING_ID: [NANTONG_ID], WRAP_ID: []}
    assert "同时刊登于" not in "".join(e.findtext(f"{ATOM}content", "") for e in chongqing)
    [nantong] = papers.entries("nantongribao")  # keep by default
    assert story_terms(nantong) == [NANTONG_ID] and not related_links(nantong)

    [quanzhou] = papers.entries("quanzhouwanbao")  # collapse: its only member of the story is its earliest
    assert entry_ids([quanzhou]) == [QUANZHOU_ID]
    assert sorted(related_links(quanzhou)) == [(link_of(NANTONG_ID), "南通日报"), (link_of(CHONGQING_ID), "重庆日报")]


def test_collapsed_feeds_stay_valid_atom(papers: Papers) -> None:
    schema = etree.RelaxNG(etree.parse(str(ATOM_RNG)))
    for name in ("all", "quanzhouwanbao", "chongqingribao"):
        document = etree.parse(str(papers.output_dir / f"{name}.atom"))
        assert schema.validate(document), (name, schema.error_log)
        assert not feedparser.parse((papers.output_dir / f"{name}.atom").read_bytes()).bozo


def test_similar_command_prints_the_story_and_each_members_similarity(papers: Papers) -> None:
    table = papers.run("similar", CHONGQING_ID)
    assert table.splitlines()[0] == f"story {NANTONG_ID}: 3 items, representative {NANTONG_ID}"
    rows = {line.split()[1]: line.split() for line in table.splitlines()[2:]}
    assert rows[NANTONG_ID][2] == "representative"
    assert rows[CHONGQING_ID + "*"][3] == NANTONG_ID
    assert float(rows[CHONGQING_ID + "*"][2]) >= 0.5

    story = json.loads(papers.run("similar", "--json", QUANZHOU_ID))
    assert story["story_id"] == NANTONG_ID
    assert [m["article_id"] for m in story["members"]][0] == NANTONG_ID  # the other two polled concurrently
    assert {m["article_id"] for m in story["members"]} == {NANTONG_ID, QUANZHOU_ID, CHONGQING_ID}
    assert [m["similarity"] is None for m in story["members"]] == [True, False, False]
    alone = json.loads(papers.run("similar", "--json", WRAP_ID))
    assert [m["article_id"] for m in alone["members"]] == [WRAP_ID]
    missing = run_cli("similar", "NW1", "--config", str(papers.config))
    assert missing.returncode == 1 and "no item NW1" in missing.stderr


def test_status_counts_stories_and_merges_per_source(papers: Papers) -> None:
    rows = {row["source"]: row for row in json.loads(papers.run("status", "--json"))}
    assert {name: (row["stories"], row["merged_items"]) for name, row in rows.items()} == {
        "nantong": (1, 0), "quanzhou": (1, 1), "chongqing": (1, 1)}
    assert "stories: 1 of two or more items, 2 items merged" in papers.run("status")


def test_an_article_page_lists_the_other_papers_that_carried_its_story(papers: Papers) -> None:
    page = (papers.output_dir / "a" / f"{CHONGQING_ID}.html").read_text(encoding="utf-8")
    assert "其他报纸的报道" in page
    assert f'href="../a/{NANTONG_ID}.html"' in page or f'/a/{NANTONG_ID}.html"' in page
    assert "南通日报" in page.split("其他报纸的报道", 1)[1]
    wrap = (papers.output_dir / "a" / f"{WRAP_ID}.html").read_text(encoding="utf-8")
    assert "其他报纸的报道" not in wrap
