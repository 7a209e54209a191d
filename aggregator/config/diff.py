"""What an edit of feeds.toml changed: sources, categories and settings, by name (pure).

The daemon applies a reload from this diff and logs it, so ops see what their edit did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from aggregator.config.load import Config

#: settings the daemon takes once at start (it holds the store's lock and the listening socket)
RESTART_SETTINGS = ("store", "listen")


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """What a feeds.toml edit changed, by name."""

    added_sources: tuple[str, ...] = ()
    removed_sources: tuple[str, ...] = ()
    #: source name → the keys that changed
    changed_sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    added_categories: tuple[str, ...] = ()
    removed_categories: tuple[str, ...] = ()
    changed_categories: tuple[str, ...] = ()
    changed_settings: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not self.describe()

    def changes_feeds(self) -> bool:
        """Whether every feed needs republishing: titles, the category set or settings changed."""
        return bool(self.added_categories or self.removed_categories or self.changed_categories
                    or self.changed_settings)

    def describe(self) -> list[str]:
        """One phrase per kind of change, for the reload log line."""
        changed_sources = tuple(f"{name} ({', '.join(keys)})" for name, keys in self.changed_sources.items())
        return [
            f"{what}: {', '.join(names)}"
            for what, names in (
                ("sources added", self.added_sources),
                ("sources removed", self.removed_sources),
                ("sources changed", changed_sources),
                ("categories added", self.added_categories),
                ("categories removed", self.removed_categories),
                ("categories changed", self.changed_categories),
                ("settings changed", self.changed_settings),
            )
            if names
        ]


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """Compare two valid configurations; keys are named as in feeds.toml."""
    old_sources = {s.name: s for s in old.sources}
    new_sources = {s.name: s for s in new.sources}
    changed_sources = {
        name: keys
        for name, source in new_sources.items()
        if name in old_sources and (keys := _changed_keys(old_sources[name], source))
    }
    return ConfigDiff(
        added_sources=tuple(name for name in new_sources if name not in old_sources),
        removed_sources=tuple(name for name in old_sources if name not in new_sources),
        changed_sources=changed_sources,
        added_categories=tuple(c for c in new.categories if c not in old.categories),
        removed_categories=tuple(c for c in old.categories if c not in new.categories),
        changed_categories=tuple(
            c for c in new.categories if c in old.categories and new.categories[c] != old.categories[c]
        ),
        changed_settings=_changed_keys(old.settings, new.settings),
    )


def _changed_keys(old: BaseModel, new: BaseModel) -> tuple[str, ...]:
    return tuple(key for key in type(old).model_fields if getattr(old, key) != getattr(new, key))


def keep_restart_settings(running: Config, new: Config) -> tuple[Config, dict[str, object]]:
    """`new` with the RESTART_SETTINGS put back to their `running` values, and those values by key.

    A reload applies everything else at once; these wait for a restart, and the caller says so.
    """
    kept = {
        key: getattr(running.settings, key)
        for key in RESTART_SETTINGS
        if getattr(running.settings, key) != getattr(new.settings, key)
    }
    if not kept:
        return new, kept
    return new.model_copy(update={"settings": new.settings.model_copy(update=kept)}), kept
