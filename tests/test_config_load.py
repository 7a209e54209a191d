"""feeds.toml → Config: each tests/data/config/<case>.toml against its <case>.error.txt, valid files,
durations, path resolution, AGGREGATOR_STORE, and the shipped feeds.toml."""

from __future__ import annotations

import re

from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.config.load import (
    CategoryConfig,
    CleanRules,
    Config,
    Settings,
    SourceConfig,
    load_config,
    parse_config,
    parse_duration,
)
from aggregator.errors import ConfigError
from tests.conftest import DATA_DIR, REPO_ROOT

CASES_DIR = DATA_DIR / "config"
ERROR_CASES = sorted(path.name.removesuffix(".error.txt") for path in CASES_DIR.glob("*.error.txt"))
VALID_CASES = sorted(path.stem for path in CASES_DIR.glob("valid_*.toml"))
# every case is shown as "feeds.toml" so the expected files read like `aggregator check` output
SHOWN = Path("feeds.toml")


def _parse(text: str, path: Path = SHOWN, env: dict[str, str] | None = None) -> Config:
    return parse_config(text, path, {} if env is None else env)


def _problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _parse(text, env=env)
    return str(caught.value).splitlines()


def test_every_case_file_has_its_expected_twin_or_is_valid() -> None:
    tomls = {path.stem for path in CASES_DIR.glob("*.toml")}
    assert tomls == set(ERROR_CASES) | set(VALID_CASES)
    assert len(ERROR_CASES) >= 20


@pytest.mark.parametrize("case", ERROR_CASES)
def test_invalid_config_reports_exactly_the_expected_problems(case: str) -> None:
    text = (CASES_DIR / f"{case}.toml").read_text(encoding="utf-8")
    expected = (CASES_DIR / f"{case}.error.txt").read_text(encoding="utf-8").splitlines()
    assert _problems_of(text) == expected


@pytest.mark.parametrize("case", VALID_CASES)
def test_valid_config_loads(case: str) -> None:
    config = load_config(CASES_DIR / f"{case}.toml", env={})
    assert config.path == (CASES_DIR / f"{case}.toml").absolute()


def test_config_error_holds_one_problem_per_line_with_file_line_and_key() -> None:
    text = (CASES_DIR / "several_problems_at_once.toml").read_text(encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        _parse(text)
    problems = caught.value.problems
    assert len(problems) == 8
    assert {problem.path for problem in problems} == {"feeds.toml"}
    assert [problem.line for problem in problems] == sorted(problem.line or 0 for problem in problems)
    assert problems[2].key == "sources[1] (jiangsu-feed).url"


def test_syntax_error_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        _parse("[settings]\ninterval = fifteen\n")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.key) == (2, 12, "syntax")


@pytest.mark.parametrize(("written", "expected"), [
    ("90s", timedelta(seconds=90)),
    ("15m", timedelta(minutes=15)),
    ("2h", timedelta(hours=2)),
    ("1d", timedelta(days=1)),
    ("1.5m", timedelta(seconds=90)),
    ("250ms", timedelta(milliseconds=250)),
], ids=["seconds", "minutes", "hours", "days", "fraction", "milliseconds"])
def test_durations_read_with_their_unit(written: str, expected: timedelta) -> None:
    text = f'[settings]\ninterval = "{written}"\n[categories.a]\ntitle = "A"\n' \
           f'[[sources]]\nname = "s"\nurl = "https://example.com/"\ncategories = ["a"]\ninterval = "{written}"\n'
    config = _parse(text)
    assert config.settings.interval == expected
    assert config.interval_of(config.sources[0]) == expected


def test_per_host_delay_may_be_zero_for_ones_own_server_but_intervals_may_not() -> None:
    assert _parse('[settings]\nper_host_delay = "0s"\n').settings.per_host_delay == timedelta(0)
    with pytest.raises(ConfigError, match="interval: must be a positive duration"):
        _parse('[settings]\ninterval = "0s"\n')
    with pytest.raises(ConfigError, match="per_host_delay: must be a duration of zero or more"):
        _parse("[settings]\nper_host_delay = -1\n")


def test_source_without_interval_uses_the_settings_interval() -> None:
    config = _parse('[settings]\ninterval = "20m"\n[[sources]]\nname = "s"\nurl = "https://example.com/"\n'
                    'categories = "auto"\n')
    assert config.interval_of(config.sources[0]) == timedelta(minutes=20)


def test_relative_store_and_output_dir_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = _parse('[settings]\nstore = "data/news.db"\noutput_dir = "../public/feeds"\n', tmp_path / "etc" / "feeds.toml")
    assert config.settings.store == str(tmp_path / "etc" / "data" / "news.db")
    assert config.settings.output_dir == tmp_path / "public" / "feeds"
    assert config.path == tmp_path / "etc" / "feeds.toml"


def test_defaults_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = _parse("", tmp_path / "feeds.toml")
    assert config.settings.store == str(tmp_path / "store" / "aggregator.db")
    assert config.settings.output_dir == tmp_path / "store" / "feeds"


@pytest.mark.parametrize("store", [
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "sqlite:///relative/kept.db",
], ids=["postgresql", "postgresql+psycopg", "sqlite-url"])
def test_store_urls_are_kept_as_written(store: str, tmp_path: Path) -> None:
    assert _parse(f'[settings]\nstore = "{store}"\n', tmp_path / "feeds.toml").settings.store == store


def test_absolute_store_path_is_kept(tmp_path: Path) -> None:
    store = tmp_path / "elsewhere" / "news.db"
    assert _parse(f'[settings]\nstore = "{store}"\n', tmp_path / "feeds.toml").settings.store == str(store)


def test_aggregator_store_overrides_settings_store_relative_to_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = _parse('[settings]\nstore = "ignored.db"\n', tmp_path / "etc" / "feeds.toml",
                    env={"AGGREGATOR_STORE": "var/news.db"})
    assert config.settings.store == str(tmp_path / "var" / "news.db")


def test_aggregator_store_url_is_kept() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    assert _parse("", env={"AGGREGATOR_STORE": url}).settings.store == url


def test_empty_aggregator_store_is_no_override(tmp_path: Path) -> None:
    config = _parse("", tmp_path / "feeds.toml", env={"AGGREGATOR_STORE": ""})
    assert config.settings.store == str(tmp_path / "store" / "aggregator.db")


def test_invalid_aggregator_store_is_reported_with_the_file_problems() -> None:
    problems = _problems_of('[settings]\nlisten = "x"\n', env={"AGGREGATOR_STORE": "redis://cache/0"})
    assert problems == [
        'feeds.toml:2: settings.listen: must be HOST:PORT such as "127.0.0.1:8080", not \'x\'',
        ("environment: AGGREGATOR_STORE: must be a SQLite file path or a URL starting with postgresql://, "
         "postgresql+psycopg://, sqlite://, not 'redis://cache/0'"),
    ]


def test_parse_config_without_env_ignores_the_process_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATOR_STORE", "postgresql://from-env/db")
    config = parse_config("", tmp_path / "feeds.toml")
    assert config.settings.store == str(tmp_path / "store" / "aggregator.db")


def test_load_config_without_env_reads_the_process_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATOR_STORE", "postgresql://from-env/db")
    (tmp_path / "feeds.toml").write_text("", encoding="utf-8")
    assert load_config(tmp_path / "feeds.toml").settings.store == "postgresql://from-env/db"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.toml", env={})
    assert str(caught.value) == f"{tmp_path / 'absent.toml'}: cannot read the file: No such file or directory"
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_bytes('[categories.a]\ntitle = "南通日报"\n'.encode("gb18030"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value) == f"{path}: must be UTF-8 text (TOML 1.0), byte 24 is not"


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_bytes('\ufeff[categories.a]\ntitle = "南通日报新闻"\n'.encode())
    assert load_config(path, env={}).categories["a"].title == "南通日报新闻"


def test_messages_name_the_path_as_the_caller_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "conf.d" / "feeds.toml"
    with pytest.raises(ConfigError) as caught:
        parse_config('[settings]\nlisten = "x"\n', path, {})
    assert str(caught.value).startswith(f"{path}:2: settings.listen: ")


def test_valid_file_keeps_every_value() -> None:
    config = load_config(CASES_DIR / "valid_every_source_kind.toml", env={})
    feed, media, custom, page = config.sources
    assert config.settings.listen == "[::1]:8081"
    assert feed.cron == "*/20 6-23 * * mon-fri"
    assert feed.clean.remove == ("div.share", "p[style*='display:none']")
    assert feed.clean.replace[0].pattern == "　　"
    assert media.categories == "auto"
    assert custom.fields is not None and custom.fields.id == "code"
    assert custom.category_from == "medium"
    assert (page.kind, page.max_pages, page.enabled) == ("html", 3, False)
    assert page.interval == timedelta(hours=2)


def test_source_of_name_url_and_preset_is_a_json_source_filed_by_medium() -> None:
    config = load_config(CASES_DIR / "valid_three_line_eastmoney_sources.toml", env={})
    media, rolling = config.sources
    assert (media.kind, media.preset, media.categories) == ("json", "eastmoney", "auto")
    assert (rolling.kind, rolling.categories) == ("json", ("emnews",))


def test_source_built_in_code_with_a_preset_gets_the_same_implied_keys() -> None:
    source = SourceConfig(name="em", url="http://127.0.0.1/api", preset="eastmoney")
    assert (source.kind, source.categories) == ("json", "auto")


def test_preset_on_another_kind_implies_no_categories() -> None:
    problems = _problems_of('[[sources]]\nname = "a"\nurl = "https://example.com/a.xml"\n'
                            'kind = "feed"\npreset = "eastmoney"\n')
    assert problems == [
        'feeds.toml:1: sources[0] (a).categories: must name at least one category or be "auto"',
        'feeds.toml:5: sources[0] (a).preset: only applies to kind = "json"',
    ]


def test_shipped_feeds_toml_loads() -> None:
    config = load_config(REPO_ROOT / "feeds.toml", env={})
    assert config.categories["nantongribao"].title == "南通日报新闻"
    assert config.settings.store == str(REPO_ROOT / "store" / "aggregator.db")
    assert config.settings.output_dir == REPO_ROOT / "store" / "feeds"


def test_shipped_feeds_toml_reads_the_legacy_eastmoney_api_for_nantong_daily() -> None:
    config = load_config(REPO_ROOT / "feeds.toml", env={})
    media = config.source("eastmoney-media")
    assert (media.kind, media.preset, media.categories) == ("json", "eastmoney", "auto")
    assert media.url == "http://183.136.162.242/web/webapi?type=45&count=100&newsid=1"


def test_shipped_feeds_toml_polls_in_whole_minutes_and_uses_every_category() -> None:
    config = load_config(REPO_ROOT / "feeds.toml", env={})
    intervals = [config.interval_of(source) for source in config.sources]
    assert all(interval % timedelta(minutes=1) == timedelta(0) for interval in intervals)
    used = {category for source in config.sources if source.categories != "auto" for category in source.categories}
    # nantongribao is filled through categories = "auto" (the medium 南通日报)
    assert used | {"nantongribao"} == set(config.categories)


# --- docs/configuration.md is the reference: every key there, with the default the code uses -------------

REFERENCE = REPO_ROOT / "docs" / "configuration.md"


def _reference_tables() -> dict[str, dict[str, list[str]]]:
    """Section heading → {key: [the other cells of its row]} for the key tables of the reference."""
    tables: dict[str, dict[str, list[str]]] = {}
    heading = ""
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            tables.setdefault(heading, {})[cells[0].strip("`")] = cells[1:]
    return tables


def _documented_default(cell: str) -> object:
    """The default column as a value: `"15m"` → timedelta, `100` → 100, `10485760` (10 MiB) → 10485760."""
    if cell == "none":
        return None
    literal = cell.split("`")[1]
    if literal in ("true", "false"):
        return literal == "true"
    if literal.isdigit():
        return int(literal)
    if re.fullmatch(r"\d+\.\d+", literal):
        return float(literal)
    text = literal.strip('"')
    try:
        return parse_duration(text)
    except ValueError:
        return text


def test_reference_documents_every_settings_key_with_the_default_the_code_uses() -> None:
    table = _reference_tables()["`[settings]`"]
    assert set(table) == set(Settings.model_fields)
    for key, (_type, default, _meaning) in table.items():
        actual = Settings.model_fields[key].default
        assert _documented_default(default) == (str(actual) if isinstance(actual, Path) else actual), key


def test_reference_documents_every_source_key() -> None:
    tables = _reference_tables()
    documented = {
        key
        for heading in ("Keys for every kind", '`kind = "json"`: news APIs', '`kind = "html"`: list pages')
        for key in tables[heading]
    }
    assert documented == set(SourceConfig.model_fields)
    assert set(tables["`[sources.clean]`: cleaning rules"]) == set(CleanRules.model_fields)
    assert set(tables["`[categories.<id>]`"]) == set(CategoryConfig.model_fields)
