"""importers/opml.py: OPML subscription lists to [[sources]] blocks and back (tests/data/opml)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aggregator.config.load import Config, parse_config
from aggregator.importers.opml import OpmlError, OpmlFeed, export_opml, opml_to_toml, read_opml
from tests.conftest import DATA_DIR

CASES_DIR = DATA_DIR / "opml"
BASE_TOML = '[settings]\nallow_private_networks = true\n\n[categories.jiangsu]\ntitle = "江苏"\n\n'


def _opml(name: str) -> bytes:
    return (CASES_DIR / name).read_bytes()


def _config(text: str, tmp_path: Path) -> Config:
    return parse_config(text, tmp_path / "feeds.toml", {})


def test_folders_become_categories_and_a_feed_in_two_folders_is_one_source() -> None:
    expected = (CASES_DIR / "folders_become_categories.expected.toml").read_text(encoding="utf-8")
    assert opml_to_toml(_opml("folders_become_categories.opml")) == expected


def test_printed_blocks_appended_to_feeds_toml_make_a_valid_config(tmp_path: Path) -> None:
    config = _config(BASE_TOML + opml_to_toml(_opml("folders_become_categories.opml")), tmp_path)
    assert [(s.name, s.categories) for s in config.sources] == [
        ("南通日报 经济", ("nantongribao",)),
        ("中国新闻网 滚动", ("nantongribao", "zonghe")),
        ('人民网 "时政"', ("zonghe",)),
        ("IT之家", ("imported",)),
    ]
    assert config.categories["nantongribao"].title == "南通日报"


def test_category_option_files_every_feed_under_it() -> None:
    toml = opml_to_toml(_opml("folders_become_categories.opml"), category="jiangsu")
    assert "[categories." not in toml
    assert toml.count('categories = ["jiangsu"]') == 4


def test_feeds_and_names_already_in_the_config_are_not_repeated(tmp_path: Path) -> None:
    known = _config(
        BASE_TOML + '[[sources]]\nname = "IT之家"\nurl = "https://www.ithome.com/rss/"\ncategories = ["jiangsu"]\n\n'
        '[[sources]]\nname = "南通日报 经济"\nurl = "http://www.ntrb.com.cn/rss/other.xml"\ncategories = ["jiangsu"]\n',
        tmp_path,
    )
    toml = opml_to_toml(_opml("folders_become_categories.opml"), known=known)
    assert "https://www.ithome.com/rss/" not in toml and "[categories.imported]" not in toml
    assert 'name = "南通日报 经济 (2)"' in toml
    merged = _config(
        BASE_TOML + '[[sources]]\nname = "IT之家"\nurl = "https://www.ithome.com/rss/"\ncategories = ["jiangsu"]\n\n'
        '[[sources]]\nname = "南通日报 经济"\nurl = "http://www.ntrb.com.cn/rss/other.xml"\ncategories = ["jiangsu"]\n\n'
        + toml,
        tmp_path,
    )
    assert len(merged.sources) == 5


def test_charset_from_the_xml_declaration_is_used() -> None:
    assert read_opml(_opml("gbk_declared_in_xml_declaration.opml")) == [
        OpmlFeed("泉州晚报 要闻", "http://www.qzwb.com/rss/news.xml", None, ("泉州晚报",))
    ]


@pytest.mark.parametrize("case", ["billion_laughs_is_not_expanded.opml", "external_entity_is_not_read.opml"])
def test_entities_declared_in_the_document_are_never_expanded(case: str) -> None:
    started = time.monotonic()
    with pytest.raises(OpmlError, match="not a well-formed XML document"):
        read_opml(_opml(case))
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_opml("rss_document_is_not_opml.opml"), "the root element is <rss>"),
        (b"<html><body>not xml", "not a well-formed XML document"),
    ],
    ids=["rss", "broken"],
)
def test_a_file_that_is_no_opml_is_an_opml_error(data: bytes, message: str) -> None:
    with pytest.raises(OpmlError, match=message):
        read_opml(data)


def test_export_lists_feed_sources_by_category_and_reads_back(tmp_path: Path) -> None:
    config = _config(
        BASE_TOML + '[categories.nantongribao]\ntitle = "南通日报新闻"\n\n'
        '[[sources]]\nname = "南通日报 经济"\nurl = "http://www.ntrb.com.cn/rss/economy.xml"\n'
        'categories = ["nantongribao", "jiangsu"]\n\n'
        '[[sources]]\nname = "人民网 时政"\nurl = "http://www.people.com.cn/rss/politics.xml"\ncategories = ["jiangsu"]\n\n'
        '[[sources]]\nname = "eastmoney"\nkind = "json"\npreset = "eastmoney"\n'
        'url = "http://127.0.0.1/api"\ncategories = "auto"\n',
        tmp_path,
    )
    document = export_opml(config)
    assert document.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<opml version=\"2.0\">")
    assert [(f.title, f.xml_url, f.folders) for f in read_opml(document)] == [
        ("南通日报 经济", "http://www.ntrb.com.cn/rss/economy.xml", ("南通日报新闻",)),
        ("南通日报 经济", "http://www.ntrb.com.cn/rss/economy.xml", ("江苏",)),
        ("人民网 时政", "http://www.people.com.cn/rss/politics.xml", ("江苏",)),
    ]
