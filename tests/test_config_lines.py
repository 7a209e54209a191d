"""The TOML line locator and key names: every key shape feeds.toml uses, and every key of every
config fixture found at the line it is on."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from aggregator.config.lines import Loc, find_line, format_key, locate_keys
from tests.conftest import DATA_DIR, REPO_ROOT

DOCUMENT = '''\
# comment with [brackets] and = signs
top = 1
[settings]
interval = "15m"   # trailing comment
"quoted.key" = 'literal'
nested.dotted.key = true

[categories.nantongribao]
title = """multi
line "quoted" \\""" title"""
[categories."with space"]
title = \'\'\'raw \'\' text\'\'\'

[[sources]]
name = "first"
clean.remove = [
  "div.a",   # a comment inside the array
  "p[x=']']",
]
fields = { id = "infoCode", title = "t", nested = { a = 1 } }

[[sources.clean.replace]]
pattern = "a"

[[sources.clean.replace]]
pattern = "b"

[[sources]]
name = "second"
when = 1979-05-27 07:32:00
replace = [{ pattern = "x" }, { pattern = "y" }]

[sources.clean]
unwrap = ["span"]
'''


@pytest.mark.parametrize(("loc", "line"), [
    (("top",), 2),
    (("settings",), 3),
    (("settings", "interval"), 4),
    (("settings", "quoted.key"), 5),
    (("settings", "nested"), 6),
    (("settings", "nested", "dotted", "key"), 6),
    (("categories", "nantongribao"), 8),
    (("categories", "nantongribao", "title"), 9),
    (("categories", "with space", "title"), 12),
    (("sources",), 14),
    (("sources", 0), 14),
    (("sources", 0, "name"), 15),
    (("sources", 0, "clean", "remove"), 16),
    (("sources", 0, "clean", "remove", 0), 17),
    (("sources", 0, "clean", "remove", 1), 18),
    (("sources", 0, "fields", "title"), 20),
    (("sources", 0, "fields", "nested", "a"), 20),
    (("sources", 0, "clean", "replace", 0), 22),
    (("sources", 0, "clean", "replace", 1, "pattern"), 26),
    (("sources", 1), 28),
    (("sources", 1, "when"), 30),
    (("sources", 1, "replace", 1, "pattern"), 31),
    (("sources", 1, "clean"), 33),
    (("sources", 1, "clean", "unwrap", 0), 34),
], ids=lambda value: ".".join(map(str, value)) if isinstance(value, tuple) else str(value))
def test_each_key_shape_is_found_on_its_line(loc: Loc, line: int) -> None:
    assert locate_keys(DOCUMENT)[loc] == line


def test_missing_key_falls_back_to_its_table_header() -> None:
    lines = locate_keys(DOCUMENT)
    assert find_line(lines, ("sources", 1, "url")) == 28
    assert find_line(lines, ("categories", "absent", "title")) == 8
    assert find_line(lines, ("absent", "key")) is None


@pytest.mark.parametrize(("loc", "names", "shown"), [
    (("settings", "interval"), {}, "settings.interval"),
    (("categories", "nantongribao", "title"), {}, "categories.nantongribao.title"),
    (("sources", 3, "url"), {3: "nantong-daily"}, "sources[3] (nantong-daily).url"),
    (("sources", 3, "url"), {}, "sources[3].url"),
    (("sources", 0, "clean", "replace", 1, "pattern"), {0: "a"}, "sources[0] (a).clean.replace[1].pattern"),
    (("categories", "Bad Id"), {}, 'categories."Bad Id"'),
], ids=["settings", "category", "source-with-name", "source-without-name", "nested-array", "quoted"])
def test_keys_are_named_in_toml_spelling(loc: Loc, names: Mapping[int, str], shown: str) -> None:
    assert format_key(loc, names) == shown


def _key_paths(value: Any, prefix: Loc = ()) -> Iterator[Loc]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from _key_paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield prefix + (index,)
            yield from _key_paths(item, prefix + (index,))


def _parseable_fixtures() -> list[Path]:
    paths = [*sorted((DATA_DIR / "config").glob("*.toml")), REPO_ROOT / "feeds.toml"]
    readable = []
    for path in paths:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError:
            continue
        readable.append(path)
    return readable


@pytest.mark.parametrize("path", _parseable_fixtures(), ids=lambda path: path.name)
def test_every_key_of_a_fixture_is_located_on_a_line_that_mentions_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = locate_keys(text)
    text_lines = text.splitlines()
    for loc in _key_paths(tomllib.loads(text)):
        assert loc in lines, loc
        last_name = next((part for part in reversed(loc) if isinstance(part, str)), "")
        assert last_name in text_lines[lines[loc] - 1] or isinstance(loc[-1], int), (loc, lines[loc])
