"""The `aggregator` command end to end: a real subprocess, a real loopback feed server, a real SQLite file."""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from aggregator.cli import build_parser, main
from tests.conftest import DATA_DIR, REPO_ROOT
from tests.corpus_feeds import Post, atom, read_post, rss
from tests.fixture_server import FixtureServer, Route

EMNEWS_POST = "_posts__2022-05-26-202205262391921712.md"
NW_POST = "old_post__2022-05-26-NW202205262391921712.md"
SHARED_ID = "NW202205262391921712"
ATOM_RNG = REPO_ROOT / "aggregator" / "schemas" / "atom.rng"


@dataclass
class Scenario:
    server: FixtureServer
    config: Path
    output_dir: Path
    seed: Post
    emnews: Post
    nw: Post
    quanzhou: Post

    def run(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--config", str(self.config), timeout=timeout, env=env)

    def feed(self, category: str) -> feedparser.FeedParserDict:
        return feedparser.parse((self.output_dir / f"{category}.atom").read_bytes())


def run_cli(
    *args: str, timeout: float = 120, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    env.pop("AGGREGATOR_STORE", None)
    return subprocess.run([sys.executable, "-m", "aggregator", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd or REPO_ROOT, check=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def scenario(tmp_path: Path, feed_server: FixtureServer, seed_post: Path, legacy_posts_dir: Path) -> Scenario:
    """Four live sources (seed RSS, emnews Atom, medium RSS, GB18030 RSS) and two dead ones."""
    seed = read_post(seed_post)
    emnews = read_post(legacy_posts_dir / EMNEWS_POST)
    nw = read_post(legacy_posts_dir / NW_POST)
    quanzhou = read_post(next(p for p in legacy_posts_dir.glob("*NW*.md") if "categories: quanzhouwanbao" in p.read_text()))
    routes = {
        "/nantong.rss": Route(rss("南通日报", [seed]), etag='"n1"'),
        "/emnews.atom": Route(atom("东财滚动新闻", [emnews]), etag='"e1"', gzip=True,
                              content_type="application/atom+xml"),
        "/shzqb.rss": Route(rss("上海证券报", [nw]), last_modified="Thu, 26 May 2022 00:00:00 GMT"),
        "/gb.rss": Route(rss("泉州晚报", [quanzhou], encoding="gb18030"), etag='"g1"',
                         content_type="application/rss+xml; charset=GB2312"),
        "/broken": Route(b"oops", status=500, content_type="text/plain"),
    }
    feed_server.routes.update(routes)
    output_dir = tmp_path / "public"
    config = tmp_path / "feeds.toml"
    sources = [
        ("nantong", "/nantong.rss", "nantongribao"), ("emnews", "/emnews.atom", "emnews"),
        ("shzqb", "/shzqb.rss", "shanghaizhengquanbao"), ("quanzhou", "/gb.rss", "quanzhouwanbao"),
        ("broken", "/broken", "emnews"),
    ]
    text = [
        "[settings]", 'store = "data/aggregator.db"', 'output_dir = "public"', "allow_private_networks = true",
        'base_url = "https://news.example.org/"', 'per_host_delay = "10ms"', 'timeout = "5s"', "",
    ]
    for category, title in [("nantongribao", "南通日报新闻"), ("emnews", "东财滚动新闻"),
                            ("shanghaizhengquanbao", "上海证券报新闻"), ("quanzhouwanbao", "泉州晚报新闻")]:
        text += [f"[categories.{category}]", f'title = "{title}"', ""]
    for name, path, category in sources:
        text += ["[[sources]]", f'name = "{name}"', f'url = "{feed_server.url(path)}"', f'categories = ["{category}"]', ""]
    text += ["[[sources]]", 'name = "refused"', f'url = "http://127.0.0.1:{_closed_port()}/feed"',
             'categories = ["emnews"]', ""]
    config.write_text("\n".join(text), encoding="utf-8")
    return Scenario(feed_server, config, output_dir, seed, emnews, nw, quanzhou)


def test_poll_stores_the_article_seen_on_two_channels_once_and_lists_it_in_both_categories(scenario: Scenario) -> None:
    result = scenario.run("poll", "--all")
    assert result.returncode == 0, result.stderr
    emnews, shzqb = scenario.feed("emnews"), scenario.feed("shanghaizhengquanbao")
    assert [e.title for e in emnews.entries] == [scenario.emnews.title]
    assert [e.title for e in shzqb.entries] == [scenario.nw.title]
    assert emnews.entries[0].id == shzqb.entries[0].id
    assert SHARED_ID in emnews.entries[0].id
    assert [e.title for e in scenario.feed("nantongribao").entries] == [scenario.seed.title]


def test_poll_decodes_a_gb18030_feed_labelled_gb2312(scenario: Scenario) -> None:
    assert scenario.run("poll", "--all").returncode == 0
    [entry] = scenario.feed("quanzhouwanbao").entries
    assert entry.title == scenario.quanzhou.title
    assert "（文章来源：泉州晚报）" in entry.content[0].value


def test_published_feeds_carry_no_widget_chart_image_quote_link_or_hidden_paragraph(scenario: Scenario) -> None:
    assert scenario.run("poll", "--all").returncode == 0
    for path in scenario.output_dir.glob("*.atom"):
        text = path.read_text(encoding="utf-8")
        for marker in ("EM_StockImg", "webquoteklinepic", "display:none", "quote.eastmoney.com", "keytip",
                       "data-code", "<script", "style="):
            assert marker not in text, f"{marker} survived in {path.name}"
    seed_entry = scenario.feed("nantongribao").entries[0]
    assert "中天科技全面启动" in seed_entry.title
    assert "（文章来源：南通日报）" in seed_entry.content[0].value


def test_published_feeds_parse_cleanly_and_validate_against_the_atom_schema(scenario: Scenario) -> None:
    assert scenario.run("poll", "--all").returncode == 0
    schema = etree.RelaxNG(etree.parse(str(ATOM_RNG)))
    feeds = sorted(scenario.output_dir.glob("*.atom"))
    assert {p.stem for p in feeds} >= {"nantongribao", "emnews", "shanghaizhengquanbao", "quanzhouwanbao"}
    for path in feeds:
        parsed = feedparser.parse(path.read_bytes())
        assert not parsed.bozo, (path.name, parsed.get("bozo_exception"))
        document = etree.parse(str(path))
        assert schema.validate(document), (path.name, schema.error_log)
        assert document.find("{http://www.w3.org/2005/Atom}link[@rel='self']") is not None


def test_dead_sources_are_reported_while_the_others_publish(scenario: Scenario) -> None:
    result = scenario.run("poll", "--all")
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line and not line[0].isdigit()}
    assert "error" in lines["broken"] and "HTTP 500" in lines["broken"]
    assert "error" in lines["refused"] and "fetch:" in lines["refused"]
    assert "new" in lines["nantong"]
    assert (scenario.output_dir / "nantongribao.atom").exists()
    status = scenario.run("status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"broken"' in status.stdout and "HTTP 500" in status.stdout


def test_second_poll_gets_not_modified_and_rewrites_no_file(scenario: Scenario) -> None:
    first = scenario.run("poll", "--all", "-v")
    assert first.returncode == 0
    if (os.cpu_count() or 1) > 1:  # one core: `poll` parses inline, with no pool at all
        assert "parse/clean pool of" in first.stderr
    mtimes = {p.name: p.stat().st_mtime_ns for p in scenario.output_dir.iterdir() if p.is_file()}
    hits_before = scenario.server.hits["/nantong.rss"]
    second = scenario.run("poll", "--all", "-v", env={"PYTHONPROFILEIMPORTTIME": "1"})  # = python -X importtime
    assert second.returncode == 0
    assert "parse/clean pool of" not in second.stderr, "a pass of 304s started the worker pool"
    imported = {line.rsplit("|", 1)[-1].strip() for line in second.stderr.splitlines()
                if line.startswith("import time:")}
    assert "aggregator.update" in imported
    assert "numpy" not in imported, "a pass of 304s signs nothing"
    assert "not modified" in next(line for line in second.stdout.splitlines() if line.startswith("nantong"))
    conditional = [h for p, _, h, _ in scenario.server.requests if p == "/nantong.rss"][hits_before:]
    assert conditional and all(h.get("If-None-Match") == '"n1"' for h in conditional)
    assert {p.name: p.stat().st_mtime_ns for p in scenario.output_dir.iterdir() if p.is_file()} == mtimes


#: what a pass whose sources all answer 304 has no use for (issue 12): the store's SQLAlchemy side, the
#: parse, clean and publish stages and their libraries
NOT_FOR_A_PASS_OF_304S = (
    "sqlalchemy", "aggregator.storage.sql", "feedparser", "lxml", "nh3", "trafilatura", "feedgen", "apscheduler",
    "psycopg", "uvicorn", "charset_normalizer", "pypinyin", "aggregator.parse", "aggregator.clean",
    "aggregator.publish.run",
)


def test_a_pass_of_304s_imports_neither_sqlalchemy_nor_the_parse_and_publish_stages_and_touches_no_file(
    tmp_path: Path, feed_server: FixtureServer, seed_post: Path
) -> None:
    seed = read_post(seed_post)
    feed_server.routes["/etag.rss"] = Route(rss("南通日报", [seed]), etag='"e1"')
    feed_server.routes["/dated.rss"] = Route(rss("江海晚报", [replace(seed, link=seed.link + "&from=timeline")]),
                                             last_modified="Thu, 26 May 2022 00:00:00 GMT")
    config = tmp_path / "feeds.toml"
    config.write_text("\n".join([
        "[settings]", 'store = "data/aggregator.db"', 'output_dir = "public"', "allow_private_networks = true",
        'per_host_delay = "0s"', "[categories.nantongribao]", 'title = "南通日报新闻"',
        "[[sources]]", 'name = "etag"', f'url = "{feed_server.url("/etag.rss")}"', 'categories = ["nantongribao"]',
        "[[sources]]", 'name = "dated"', f'url = "{feed_server.url("/dated.rss")}"', 'categories = ["nantongribao"]',
    ]) + "\n", encoding="utf-8")
    assert run_cli("poll", "--all", "--config", str(config)).returncode == 0
    output_dir = tmp_path / "public"
    files = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in output_dir.rglob("*")}
    loaded = tmp_path / "modules.txt"
    # the same `main` as `aggregator poll`, in a fresh interpreter that then lists what it imported
    program = ("import sys\nfrom pathlib import Path\nfrom aggregator.cli import main\n"
               f"code = main(['poll', '--all', '--config', {str(config)!r}])\n"
               f"Path({str(loaded)!r}).write_text('\\n'.join(sorted(sys.modules)))\nsys.exit(code)\n")
    second = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT, check=False)
    assert second.returncode == 0, second.stderr
    assert "2 sources: 0 with new items, 0 updated, 0 unchanged, 2 not modified, 0 failed" in second.stdout
    modules = loaded.read_text().split()
    assert [m for m in modules if m.startswith(NOT_FOR_A_PASS_OF_304S)] == []
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in output_dir.rglob("*")} == files
    # the states the pass saved without SQLAlchemy read back through it: validators kept, polled now
    from aggregator.config.load import load_config
    from aggregator.storage import open_storage

    storage = open_storage(load_config(config).settings.store)
    try:
        states = storage.get_source_states()
    finally:
        storage.close()
    assert states["etag"].etag == '"e1"' and states["etag"].last_status == 304
    assert states["dated"].last_modified == "Thu, 26 May 2022 00:00:00 GMT" and states["dated"].last_status == 304
    assert all(s.next_poll_at is not None and s.next_poll_at > s.last_polled_at for s in states.values())


def test_edited_item_is_updated_in_place_not_duplicated(scenario: Scenario) -> None:
    assert scenario.run("poll", "--all").returncode == 0
    before = scenario.feed("nantongribao").entries[0]
    edited = replace(scenario.seed, title=scenario.seed.title + "（更新）")
    scenario.server.routes["/nantong.rss"] = Route(rss("南通日报", [edited]), etag='"n2"')
    result = scenario.run("poll", "--all")
    assert "updated" in next(line for line in result.stdout.splitlines() if line.startswith("nantong"))
    [after] = scenario.feed("nantongribao").entries
    assert after.id == before.id
    assert after.title.endswith("（更新）")
    assert after.updated_parsed > before.updated_parsed


def test_poll_waits_for_the_writer_lock_then_exits_with_a_clear_message(scenario: Scenario) -> None:
    from aggregator.config.load import load_config
    from aggregator.storage import open_storage

    storage = open_storage(load_config(scenario.config).settings.store)
    try:
        with storage.writer_lock(5):
            result = scenario.run("poll", "--all", "--lock-timeout", "1")
    finally:
        storage.close()
    assert result.returncode == 3
    assert "another aggregator process" in result.stderr
    assert not (scenario.output_dir / "nantongribao.atom").exists()


def test_two_polls_started_at_once_both_finish_and_store_each_article_once(scenario: Scenario) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("AGGREGATOR_STORE", None)
    command = [sys.executable, "-m", "aggregator", "poll", "--all", "-q", "--config", str(scenario.config)]
    polls = [subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [poll.communicate(timeout=120) for poll in polls]
    assert [poll.returncode for poll in polls] == [0, 0], outputs
    # one waited for the other's writer lock, then found nothing new: the shared article was stored once
    summaries = sorted(out.splitlines()[-1] for out, _ in outputs)
    assert "; 0 new items" in summaries[0] and "4 not modified" in summaries[0], summaries
    assert "; 3 new items" in summaries[1], summaries
    assert [e.title for e in scenario.feed("emnews").entries] == [scenario.emnews.title]
    assert [e.title for e in scenario.feed("nantongribao").entries] == [scenario.seed.title]


def test_poll_without_all_polls_only_due_sources_and_source_picks_some(scenario: Scenario) -> None:
    picked = scenario.run("poll", "--source", "nantong", "--source", "quanzhou")
    assert picked.returncode == 0, picked.stderr
    assert sorted(line.split()[0] for line in picked.stdout.splitlines()[:-1]) == ["nantong", "quanzhou"]
    assert (scenario.server.hits["/nantong.rss"], scenario.server.hits["/emnews.atom"]) == (1, 0)
    due = scenario.run("poll")
    assert due.returncode == 0, due.stderr
    polled = sorted(line.split()[0] for line in due.stdout.splitlines()[:-1])
    assert polled == ["broken", "emnews", "refused", "shzqb"], "nantong and quanzhou are not due for 15 minutes"
    assert scenario.server.hits["/nantong.rss"] == 1
    unknown = scenario.run("poll", "--source", "nope")
    assert unknown.returncode == 2 and "unknown source(s): nope" in unknown.stderr


def test_build_rerenders_feeds_from_the_store_without_fetching(scenario: Scenario) -> None:
    assert scenario.run("poll", "--all").returncode == 0
    hits = sum(scenario.server.hits.values())
    for path in scenario.output_dir.glob("*.atom"):
        path.unlink()
    result = scenario.run("build")
    assert result.returncode == 0, result.stderr
    assert (scenario.output_dir / "nantongribao.atom").exists()
    assert sum(scenario.server.hits.values()) == hits
    pages = sorted((scenario.output_dir / "a").glob("*.html"))
    assert pages
    pages[0].write_bytes(b"rendered by an older template")
    assert scenario.run("build", "--pages").returncode == 0
    assert pages[0].read_bytes().startswith(b"<!DOCTYPE html>")


def test_invalid_config_is_reported_by_check_and_stops_every_command(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text('[settings]\ninterval = "soon"\n\n[[sources]]\nname = "x"\nurl = "ftp://x"\ncategories = ["nope"]\n')
    check = run_cli("check", "--config", str(config))
    assert check.returncode == 2
    assert f"{config}:2: settings.interval" in check.stderr
    assert "sources[0]" in check.stderr and ":6:" in check.stderr
    opml = str(DATA_DIR / "opml" / "folders_become_categories.opml")
    commands = [["poll"], ["build"], ["run"], ["migrate"], ["serve"], ["status"], ["clean", str(config)],
                ["import-jekyll", str(tmp_path)], ["import-opml", opml], ["export-opml"], ["similar", "NW1"]]
    assert {command[0] for command in commands} | {"check"} == set(_command_names())
    for command in commands:
        result = run_cli(*command, "--config", str(config))
        assert result.returncode == 2, command
        assert "settings.interval" in result.stderr, command
    assert not (tmp_path / "store").exists(), "no command touched the store"


@pytest.mark.parametrize("before", [True, False], ids=["config-before-command", "config-after-command"])
def test_config_option_is_accepted_before_or_after_the_command(before: bool, tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text('[categories.a]\ntitle = "A"\n')
    args = ["--config", str(config), "check"] if before else ["check", "--config", str(config)]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_config_defaults_to_the_environment_then_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "feeds.toml").write_text('[categories.a]\ntitle = "A"\n')
    assert run_cli("check", cwd=tmp_path).returncode == 0
    assert run_cli("check", cwd=REPO_ROOT / "tests").returncode == 2


def _command_names() -> list[str]:
    [subparsers] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(subparsers.choices)


def test_every_command_has_help() -> None:
    names = _command_names()
    assert names == ["build", "check", "clean", "export-opml", "import-jekyll", "import-opml", "migrate", "poll",
                     "run", "serve", "similar", "status"]
    for name in names:
        result = run_cli(name, "--help")
        assert result.returncode == 0 and "--config" in result.stdout, name


def test_clean_command_applies_the_default_rules_to_stdin() -> None:
    fragment = ('<p style="display:none;height:1px;overflow:hidden;"><br /></p><!-- EM_StockImg_Start --><p><img '
                'src="https://webquoteklinepic.eastmoney.com/GetPic.aspx?nid=1.600522"></p><!-- EM_StockImg_End -->'
                "<p>正文</p><script>alert(1)</script>")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-m", "aggregator", "clean"], input=fragment, capture_output=True,
                            text=True, timeout=60, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "<p>正文</p>"


def test_clean_command_needs_no_config_but_names_an_unknown_source(tmp_path: Path) -> None:
    fragment = tmp_path / "fragment.html"
    fragment.write_text("<p>正文</p>", encoding="utf-8")
    alone = run_cli("clean", str(fragment), cwd=tmp_path)
    assert (alone.returncode, alone.stdout.strip()) == (0, "<p>正文</p>"), alone.stderr
    (tmp_path / "feeds.toml").write_text('[categories.a]\ntitle = "A"\n', encoding="utf-8")
    unknown = run_cli("clean", "--source", "nope", str(fragment), cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "aggregator: unknown source: nope"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"<p>\xba\xa3</p>", "<p>海</p>"),  # GB18030/GBK bytes, no label: the pipeline's fallback
        (b"\xef\xbb\xbf<p>\xe4\xb8\xad</p>", "<p>中</p>"),  # UTF-8 byte order mark
        ("<p>中</p>".encode("utf-16"), "<p>中</p>"),  # UTF-16 with its byte order mark
        (b'<meta charset="big5"><p>\xa4\xa4</p>', "<p>中</p>"),  # a <meta> charset, as on an HTML page
        # neither UTF-8 nor GB18030, and every byte value once so no charset detector settles on one either:
        # replacement characters last
        (b"<p>\x81\x30" + bytes(range(0x80, 0x100)) + b"</p>",
         "<p>" + (b"\x81\x30" + bytes(range(0x80, 0x100))).decode("utf-8", "replace") + "</p>"),
    ],
    ids=["gb18030", "utf8-bom", "utf16-bom", "meta-big5", "undecodable"],
)
def test_clean_command_decodes_any_bytes_on_stdin_like_a_fetched_page(raw: bytes, expected: str, tmp_path: Path) -> None:
    result = subprocess.run(["aggregator", "clean", "-"], input=raw, capture_output=True, timeout=60, cwd=tmp_path,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("utf-8").strip() == expected
    assert b"Traceback" not in result.stderr


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=512) | st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")))
def test_clean_command_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
        patch.setattr(sys, "stdout", stdout)
        patch.setattr(sys, "stderr", io.StringIO())
        patch.chdir(REPO_ROOT / "tests")  # no feeds.toml here: the default rules
        assert main(["clean", "-"]) == 0
    assert "<script" not in stdout.getvalue()


def test_check_tells_ops_about_a_retired_source_in_an_existing_store(tmp_path: Path, feed_server: FixtureServer) -> None:
    feed_server.routes["/gone"] = Route(b"", status=410)
    config = tmp_path / "feeds.toml"
    config.write_text(f'[settings]\nallow_private_networks = true\n\n[categories.a]\ntitle = "A"\n\n[[sources]]\n'
                      f'name = "gone"\nurl = "{feed_server.url("/gone")}"\ncategories = ["a"]\n')
    assert "note" not in run_cli("check", "--config", str(config)).stdout
    assert not (tmp_path / "store").exists(), "check must not create a store"
    poll = run_cli("poll", "--config", str(config))
    assert "retired" in poll.stdout
    check = run_cli("check", "--config", str(config))
    assert check.returncode == 0
    assert "note: source 'gone':" in check.stdout and "410" in check.stdout


def test_first_poll_publishes_every_feed_even_when_every_source_failed(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(f'[settings]\nallow_private_networks = true\n\n[categories.a]\ntitle = "A"\n\n[[sources]]\n'
                      f'name = "dead"\nurl = "http://127.0.0.1:{_closed_port()}/feed"\ncategories = ["a"]\n')
    result = run_cli("poll", "--config", str(config))
    assert result.returncode == 0
    assert "1 failed" in result.stdout
    feed = feedparser.parse((tmp_path / "store" / "feeds" / "a.atom").read_bytes())
    assert not feed.bozo and feed.feed.title == "A" and feed.entries == []


def test_import_jekyll_brings_the_legacy_posts_over_once_and_publishes_them(
    tmp_path: Path, legacy_posts_dir: Path
) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text('[categories.nantongribao]\ntitle = "南通日报新闻"\n')
    first = run_cli("import-jekyll", str(legacy_posts_dir), "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert "47 articles: 47 new" in first.stdout
    assert "skipped" in first.stdout and "init" in first.stdout
    feed = feedparser.parse((tmp_path / "store" / "feeds" / "nantongribao.atom").read_bytes())
    [entry] = feed.entries
    assert entry.title == "聚焦可持续发展 中天科技全面启动绿色低碳制造行动"
    assert entry.published.endswith("+08:00")
    assert "EM_StockImg" not in entry.content[0].value
    second = run_cli("import-jekyll", str(legacy_posts_dir), "--config", str(config))
    assert "0 new, 0 updated" in second.stdout, second.stdout
    assert "republished: nothing" in second.stdout


def test_import_opml_prints_sources_and_appends_them_only_when_the_config_stays_valid(tmp_path: Path) -> None:
    opml = DATA_DIR / "opml" / "folders_become_categories.opml"
    config = tmp_path / "feeds.toml"
    config.write_text('[categories.a]\ntitle = "A"\n')
    printed = run_cli("import-opml", str(opml), "--config", str(config))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == (DATA_DIR / "opml" / "folders_become_categories.expected.toml").read_text().strip()
    appended = run_cli("import-opml", str(opml), "--append", "--config", str(config))
    assert appended.returncode == 0, appended.stderr
    assert run_cli("check", "--config", str(config)).returncode == 0
    exported = run_cli("export-opml", "--config", str(config))
    assert exported.returncode == 0
    assert "http://www.ntrb.com.cn/rss/economy.xml" in exported.stdout
    again = run_cli("import-opml", str(opml), "--config", str(config))
    assert "[[sources]]" not in again.stdout, "sources already in feeds.toml are not offered twice"


def test_import_opml_append_leaves_the_config_untouched_when_the_result_is_invalid(tmp_path: Path) -> None:
    opml = DATA_DIR / "opml" / "folders_become_categories.opml"
    config = tmp_path / "feeds.toml"
    original = '[settings]\ninterval = "soon"\n'
    config.write_text(original)
    result = run_cli("import-opml", str(opml), "--append", "--config", str(config))
    assert result.returncode == 2
    assert config.read_text() == original


def test_serve_command_serves_the_published_feeds_on_the_listen_flag_until_terminated(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    port = _closed_port()
    # settings.listen names a closed port: the --listen flag must win
    config.write_text(f'[settings]\nlisten = "127.0.0.1:{_closed_port()}"\n\n[categories.a]\ntitle = "A"\n')
    assert run_cli("build", "--config", str(config)).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "aggregator", "serve", "--listen", f"127.0.0.1:{port}", "--config", str(config)]
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as server:
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/feeds/a.atom", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "serve did not start listening within 20 s"
                    time.sleep(0.1)
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
            etag = response.headers["etag"]
            again = httpx.get(f"http://127.0.0.1:{port}/feeds/a.atom", headers={"If-None-Match": etag})
            assert again.status_code == 304
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=20)
    assert server.returncode == 0, stderr


def test_serve_workers_share_the_address_and_all_stop_on_terminate(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    port = _closed_port()
    config.write_text('[settings]\n\n[categories.a]\ntitle = "A"\n')
    assert run_cli("build", "--config", str(config)).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "aggregator", "serve", "--workers", "2", "--listen", f"127.0.0.1:{port}",
               "--config", str(config)]
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as server:
        try:
            deadline = time.monotonic() + 20
            statuses = []
            while len(statuses) < 20:
                try:  # a new connection each time, so the kernel spreads them over the workers
                    statuses.append(httpx.get(f"http://127.0.0.1:{port}/feeds/a.atom", timeout=2).status_code)
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "serve did not start listening within 20 s"
                    time.sleep(0.1)
            assert statuses == [200] * 20
            children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
            assert len(children) == 2
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=20)
    assert server.returncode == 0, stderr
    assert not any(Path(f"/proc/{child}").exists() for child in children)


def test_serve_refuses_zero_workers() -> None:
    result = run_cli("serve", "--workers", "0")
    assert result.returncode == 2
    assert "--workers: must be a whole number of at least 1" in result.stderr


def test_a_poll_that_changes_nothing_delivers_the_websub_pings_a_hub_missed(tmp_path: Path) -> None:
    from tests.test_publish_websub import HubStub

    hub = HubStub()
    try:
        config = tmp_path / "feeds.toml"
        config.write_text(f'[settings]\nallow_private_networks = true\nbase_url = "https://news.example/"\n'
                          f'websub_hub = "{hub.url}"\n\n[categories.a]\ntitle = "A"\n\n[[sources]]\nname = "dead"\n'
                          f'url = "http://127.0.0.1:{_closed_port()}/feed"\ncategories = ["a"]\n')
        hub.status = 503
        assert run_cli("poll", "--config", str(config)).returncode == 0
        pending_path = tmp_path / "store" / "feeds" / ".websub-pending.json"
        assert pending_path.exists() and len(hub.pings) == 1, "the first publish failed at its first ping"

        hub.status = 204
        hub.pings.clear()
        second = run_cli("poll", "--all", "--config", str(config))
        assert second.returncode == 0, second.stderr
        assert "republished: nothing" in second.stdout
        topics = [f"https://news.example/feeds/{name}.{ext}" for name in ("a", "all") for ext in ("atom", "json")]
        assert sorted(hub.topics()) == sorted(topics)
        assert not pending_path.exists()
    finally:
        hub.stop()


# --- fault isolation (issue 10) -------------------------------------------------------------------------


def test_build_takes_the_writer_lock(scenario: Scenario) -> None:
    from aggregator.config.load import load_config
    from aggregator.storage import open_storage

    storage = open_storage(load_config(scenario.config).settings.store)
    try:
        with storage.writer_lock(5):
            result = scenario.run("build", "--lock-timeout", "0.5")
    finally:
        storage.close()
    assert result.returncode == 3
    assert "another aggregator process" in result.stderr


def test_a_feed_that_fails_to_publish_fails_alone_and_the_next_poll_publishes_it(scenario: Scenario) -> None:
    blocker = scenario.output_dir / "emnews.atom"
    blocker.mkdir(parents=True)  # emnews.atom cannot be written: a folder is in its place
    first = scenario.run("poll", "--all")
    assert first.returncode == 1
    assert "3 new items" in first.stdout  # the pass itself ran and its summary is printed
    assert "cannot write" in first.stderr and "published again later: emnews" in first.stderr
    assert [e.title for e in scenario.feed("nantongribao").entries] == [scenario.seed.title]

    blocker.rmdir()
    second = scenario.run("poll", "--source", "broken")  # changes nothing itself
    assert second.returncode == 0, second.stderr
    assert "republished: emnews" in second.stdout
    assert [e.title for e in scenario.feed("emnews").entries] == [scenario.emnews.title]


def test_a_poll_publishes_what_a_run_killed_before_publishing_left_owed(scenario: Scenario) -> None:
    from aggregator.config.load import load_config
    from aggregator.models import Item, ItemChange
    from aggregator.storage import open_storage

    assert scenario.run("poll", "--all").returncode == 0
    # what a poll killed between its commit and its publish leaves: an item stored, its feed not rewritten
    late = Item(article_id="NW202205270000000001", title="committed, never published", url=None,
                html="<p>x</p>", published=None, updated=scenario.seed.published, categories=frozenset({"nantongribao"}),
                sources=frozenset({"nantong"}), content_hash="h")
    storage = open_storage(load_config(scenario.config).settings.store)
    try:
        storage.apply_update([ItemChange("insert", late, "nantong", "r")], None)
    finally:
        storage.close()

    result = scenario.run("poll", "--source", "broken")
    assert result.returncode == 0, result.stderr
    assert "republished: nantongribao" in result.stdout
    assert "committed, never published" in [e.title for e in scenario.feed("nantongribao").entries]


def _many_posts(channel: str, count: int) -> list[Post]:
    body = "".join(f"<p>{channel} 段落 {n}：南通日报报道，长江沿岸的新闻。</p>" for n in range(20))
    return [Post(title=f"{channel} 新闻 {n}", published=datetime(2022, 1, 24, 8, n % 60, tzinfo=UTC),
                 category=channel, tag=channel, html=body, link=f"https://news.example.com/{channel}/{n}.html")
            for n in range(count)]


@pytest.mark.slow
def test_kill_9_of_poll_at_any_moment_leaves_a_store_the_next_poll_opens_at_once(
    store_url: str, tmp_path: Path, feed_server: FixtureServer
) -> None:
    channels = ["a", "b", "c", "d"]
    for channel in channels:
        feed_server.routes[f"/{channel}.rss"] = Route(rss(channel, _many_posts(channel, 40)), delay_seconds=0.1)
    config = tmp_path / "feeds.toml"
    text = ["[settings]", f'store = "{store_url}"', 'output_dir = "public"', "allow_private_networks = true",
            'per_host_delay = "1ms"', "per_host_concurrency = 4", "", "[categories.news]", 'title = "News"', ""]
    for channel in channels:
        text += ["[[sources]]", f'name = "{channel}"', f'url = "{feed_server.url(f"/{channel}.rss")}"',
                 'categories = ["news"]', ""]
    config.write_text("\n".join(text), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("AGGREGATOR_STORE", None)
    command = [sys.executable, "-m", "aggregator", "poll", "--all", "-q", "--lock-timeout", "0",
               "--config", str(config)]
    rng = random.Random(10)
    for _ in range(4):  # killed during start-up, fetching, parsing in its workers, storing or publishing
        with subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) as poll:
            time.sleep(rng.uniform(0.2, 1.5))
            poll.kill()
            _, stderr = poll.communicate(timeout=30)
        assert poll.returncode in (-9, 0), stderr  # never 3: no orphan worker holds the writer lock

    final = run_cli("poll", "--all", "--lock-timeout", "0", "--config", str(config))
    assert final.returncode == 0, final.stderr
    entries = feedparser.parse((tmp_path / "public" / "news.atom").read_bytes()).entries
    from aggregator.storage import open_storage

    storage = open_storage(store_url)
    try:
        assert storage.count_items() == 4 * 40  # nothing lost, nothing twice
        assert storage.owed_categories() == {}  # whatever a killed run left unpublished was published
    finally:
        storage.close()
    assert len(entries) == 100 and len({e.id for e in entries}) == 100
