"""Compile a source's CleanRules once: presets merged, CSS selectors turned into XPath, regexes compiled.

The rules were checked when feeds.toml was loaded (config/values.py: every selector translates, every
regex and replacement template compiles); they are trusted here, not checked again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lxml import etree

from aggregator.clean.rules import PRESETS, HostRule, SitePreset
from aggregator.clean.urls import HostIndex, build_host_index
from aggregator.config.load import CleanRules, Replacement
from aggregator.errors import reduce_error
from aggregator.selectors import css_to_xpath


@dataclass(frozen=True, slots=True)
class CompiledRules:
    """A source's CleanRules with its presets merged and selectors compiled; built once per CleanRules."""

    replacements: tuple[tuple[re.Pattern[str], str], ...]
    remove: etree.XPath | None
    unwrap: etree.XPath | None
    widget_markers: bool
    chart_image_hosts: HostIndex
    quote_link_hosts: HostIndex
    tracking_image_hosts: HostIndex
    remove_hidden: bool
    remove_pixels: bool
    strip_tracking_params: bool


@lru_cache(maxsize=256)
def compile_rules(rules: CleanRules) -> CompiledRules:
    """Merge the presets named by `rules.preset` with its own selectors and regexes, compiled."""
    presets = PRESETS[rules.preset]
    remove = [selector for preset in presets for selector in preset.remove]
    unwrap = [selector for preset in presets for selector in preset.unwrap]
    return CompiledRules(
        replacements=_compile_replacements(rules.replace),
        remove=_compile_selectors((*remove, *rules.remove)),
        unwrap=_compile_selectors((*unwrap, *rules.unwrap)),
        widget_markers=any(preset.widget_markers for preset in presets),
        chart_image_hosts=_merge_hosts(presets, "chart_image_hosts"),
        quote_link_hosts=_merge_hosts(presets, "quote_link_hosts"),
        tracking_image_hosts=_merge_hosts(presets, "tracking_image_hosts"),
        remove_hidden=any(preset.remove_hidden for preset in presets),
        remove_pixels=any(preset.remove_pixels for preset in presets),
        strip_tracking_params=any(preset.strip_tracking_params for preset in presets),
    )


def _compile_replacements(replacements: tuple[Replacement, ...]) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(replacement.pattern), replacement.replacement) for replacement in replacements)


def _merge_hosts(presets: tuple[SitePreset, ...], table: str) -> HostIndex:
    rules: tuple[HostRule, ...] = tuple(rule for preset in presets for rule in getattr(preset, table))
    return build_host_index(rules)


def _compile_selectors(selectors: tuple[str, ...]) -> etree.XPath | None:
    """One XPath for all the selectors (the presets' first, then the source's own)."""
    return etree.XPath(" | ".join(css_to_xpath(selector) for selector in selectors)) if selectors else None
