"""Compile a source's CleanRules once: presets merged, CSS selectors turned into XPath, regexes compiled."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from cssselect.parser import SelectorError
from lxml import etree

from aggregator.clean.rules import PRESETS, HostRule, SitePreset
from aggregator.clean.urls import HostIndex, build_host_index
from aggregator.config.load import CleanRules, Replacement
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


class InvalidRuleError(ValueError):
    """A selector or regex in a source's clean rules does not compile; `key` names it (`remove[2]`)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"clean: {key}: {message}")
        self.key = key
        self.message = message


@lru_cache(maxsize=256)
def compile_rules(rules: CleanRules) -> CompiledRules:
    """Merge the presets named by `rules.preset` with its own selectors and regexes, compiled."""
    presets = PRESETS[rules.preset]
    remove = [selector for preset in presets for selector in preset.remove]
    unwrap = [selector for preset in presets for selector in preset.unwrap]
    return CompiledRules(
        replacements=_compile_replacements(rules.replace),
        remove=_compile_selectors("remove", tuple(remove), rules.remove),
        unwrap=_compile_selectors("unwrap", tuple(unwrap), rules.unwrap),
        widget_markers=any(preset.widget_markers for preset in presets),
        chart_image_hosts=_merge_hosts(presets, "chart_image_hosts"),
        quote_link_hosts=_merge_hosts(presets, "quote_link_hosts"),
        tracking_image_hosts=_merge_hosts(presets, "tracking_image_hosts"),
        remove_hidden=any(preset.remove_hidden for preset in presets),
        remove_pixels=any(preset.remove_pixels for preset in presets),
        strip_tracking_params=any(preset.strip_tracking_params for preset in presets),
    )


def _compile_replacements(replacements: tuple[Replacement, ...]) -> tuple[tuple[re.Pattern[str], str], ...]:
    compiled = []
    for index, replacement in enumerate(replacements):
        try:
            pattern = re.compile(replacement.pattern)
        except re.error as e:
            raise InvalidRuleError(f"replace[{index}].pattern", f"invalid regular expression: {e}") from e
        try:
            # re parses the template eagerly, even with nothing to replace: a bad group reference
            # (`\2` with one group) or a trailing backslash fails here, not on the first item
            pattern.sub(replacement.replacement, "")
        except re.error as e:
            raise InvalidRuleError(f"replace[{index}].replacement", f"invalid replacement template: {e}") from e
        compiled.append((pattern, replacement.replacement))
    return tuple(compiled)


def _merge_hosts(presets: tuple[SitePreset, ...], table: str) -> HostIndex:
    rules: tuple[HostRule, ...] = tuple(rule for preset in presets for rule in getattr(preset, table))
    return build_host_index(rules)


def _compile_selectors(key: str, preset_selectors: tuple[str, ...],
                       own_selectors: tuple[str, ...]) -> etree.XPath | None:
    paths = [css_to_xpath(selector) for selector in preset_selectors]
    for index, selector in enumerate(own_selectors):
        try:
            path = css_to_xpath(selector)
            etree.XPath(path)
        except (SelectorError, etree.XPathError) as e:  # ExpressionError is a SelectorError
            raise InvalidRuleError(f"{key}[{index}]", f"invalid CSS selector {selector!r}: {e}") from e
        paths.append(path)
    return etree.XPath(" | ".join(paths)) if paths else None
