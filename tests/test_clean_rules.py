"""clean/rules.py: the rule tables are well-formed data that the cleaner can compile."""

from __future__ import annotations

import pytest

from aggregator.clean.compiled import compile_rules
from aggregator.selectors import css_to_xpath
from aggregator.clean.rules import (
    PRESETS,
    TRACKING_PARAMS,
    TRACKING_PARAMS_BY_VENDOR,
    TRACKING_PARAMS_ON_HOSTS,
    WIDGET_MARKER_RE,
    HostRule,
)
from aggregator.clean.urls import build_host_index, matches_host_index
from aggregator.config.load import CleanRules


@pytest.mark.parametrize("marker", [
    " EM_StockImg_Start ", "EM_StockImg_Start", "em_stockimg_start", " EM_STOCKIMG_END", "EM-StockImg-End",
    "EM_Stock_Img_Start", "\nEM_StockImg_End\n",
])
def test_widget_marker_variants_are_recognised(marker: str) -> None:
    assert WIDGET_MARKER_RE.match(marker)


@pytest.mark.parametrize("comment", ["IMG#0", "EM_StockImg", "EM_StockImg_Start and more", "StockImg_Start"])
def test_other_comments_are_not_widget_markers(comment: str) -> None:
    assert not WIDGET_MARKER_RE.match(comment)


def test_every_preset_selector_compiles_and_hosts_are_lower_case() -> None:
    for presets in PRESETS.values():
        for preset in presets:
            for selector in preset.remove + preset.unwrap:
                assert css_to_xpath(selector)
            for rule in preset.chart_image_hosts + preset.quote_link_hosts + preset.tracking_image_hosts:
                assert rule.host == rule.host.lower() and rule.path_prefix.startswith("/")
    for preset_name in PRESETS:
        assert compile_rules(CleanRules(preset=preset_name))  # type: ignore[arg-type]


def test_no_host_rule_is_already_covered_by_another_of_its_table() -> None:
    for presets in PRESETS.values():
        for preset in presets:
            for table in (preset.chart_image_hosts, preset.quote_link_hosts, preset.tracking_image_hosts):
                for rule in table:
                    others: tuple[HostRule, ...] = tuple(other for other in table if other is not rule)
                    url = f"https://{rule.host}{rule.path_prefix}"
                    assert not matches_host_index(url, build_host_index(others)), (preset.name, rule)


@pytest.mark.parametrize("url", [
    "http://quote.eastmoney.com/unify/r/1.600160",
    "https://m.quote.eastmoney.com/stock/1.600160",
    "https://wap.eastmoney.com/quote/stock/1.600160.html",
])
def test_eastmoney_quote_pages_desktop_and_mobile_are_quote_links(url: str) -> None:
    assert matches_host_index(url, compile_rules(CleanRules(preset="eastmoney")).quote_link_hosts)


def test_default_preset_is_generic_plus_eastmoney() -> None:
    assert [preset.name for preset in PRESETS["default"]] == ["generic", "eastmoney"]
    assert PRESETS["none"] == ()


def test_tracking_tables_are_lower_case_and_never_name_content() -> None:
    names = set(TRACKING_PARAMS).union(*(scoped for _, scoped in TRACKING_PARAMS_ON_HOSTS))
    assert all(name == name.lower() for name in names)
    assert not names & {"infocode", "id", "p", "page", "mid", "idx", "sn", "__biz", "q", "artcode"}
    assert TRACKING_PARAMS == frozenset().union(*TRACKING_PARAMS_BY_VENDOR.values())
