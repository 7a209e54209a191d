"""Which feeds.toml the cluster runs on: per-source definition hashes and the config hash, recorded in the store.

Every replica reads its own copy of feeds.toml. The store records the definition of each source (a hash
of its block plus the defaults it inherits) and of the whole file; a worker claims only the sources whose
recorded definition equals its own, so a machine left on an old or edited file never polls a source
differently from the others. The first process on an empty store records its file; afterwards only
`aggregator migrate` (the deployment's one-shot step) records a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, text

from aggregator.config.load import Config, SourceConfig
from aggregator.schedule import is_retired, resume_at, spread_offset
from aggregator.storage.schema import cluster_config
from aggregator.storage.errors import wrap_storage_errors

log = logging.getLogger("aggregator.cluster")

#: settings that differ per machine by design; they are not part of the shared configuration
MACHINE_SETTINGS = frozenset({"store", "listen", "output_dir"})
#: settings that change how a source is polled and stored: part of each source's definition
POLL_SETTINGS = frozenset({"max_interval", "max_backoff", "user_agent", "timeout", "max_response_bytes",
                           "max_redirects", "allow_private_networks"})
#: a source whose definition changed is first polled within this window, spread by name
CHANGED_SPREAD = timedelta(seconds=10)
_CONFIG_ROW = 1


def definition_hash(config: Config, source: SourceConfig) -> str:
    """The source's block with the defaults it inherits (interval, timezone, fetch settings)."""
    settings = config.settings.model_dump(mode="json", include=set(POLL_SETTINGS))
    data = {"source": source.model_dump(mode="json"), "interval": config.interval_of(source).total_seconds(),
            "timezone": config.timezone_of(source), "settings": settings}
    return _digest(data)


def definition_hashes(config: Config) -> dict[str, str]:
    return {source.name: definition_hash(config, source) for source in config.sources}


def config_hash(config: Config) -> str:
    """The whole file as the cluster shares it: categories, settings and every source definition."""
    settings = config.settings.model_dump(mode="json", exclude=set(MACHINE_SETTINGS))
    categories = {name: c.model_dump(mode="json") for name, c in config.categories.items()}
    return _digest({"settings": settings, "categories": categories, "sources": definition_hashes(config)})


@dataclass(frozen=True, slots=True)
class SharedView:
    """How this process's feeds.toml compares with the one recorded in the store."""

    recorded_hash: str
    recorded_by: str
    recorded_at: datetime
    #: sources this process may claim: their recorded definition equals its own
    agreed: frozenset[str]
    #: sources whose recorded definition differs, or that the recorded file does not have
    disagreed: tuple[str, ...]

    @property
    def matches(self) -> bool:
        return not self.disagreed


def record_config(engine: Engine, config: Config, recorded_by: str, now: datetime, *, force: bool) -> bool:
    """Record `config` as the cluster's unless one is recorded already (`force` replaces it); True if written.

    Each source gets its row with its definition hash; new and changed sources become due soon (spread by
    name), unchanged ones keep their schedule, disabled and retired ones are never due, and sources gone
    from the file lose their definition (never claimed again).
    """
    with wrap_storage_errors("could not record the configuration"), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # two first workers starting together: one records, the other then finds it recorded
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('aggregator:cluster_config'))"))
        existing = connection.execute(select(cluster_config.c.config_hash)).scalar_one_or_none()
        if existing is not None and not force:
            return False
        values = {"config_hash": config_hash(config), "recorded_by": recorded_by, "recorded_at": now}
        if existing is None:
            connection.execute(cluster_config.insert().values(id=_CONFIG_ROW, **values))
        else:
            connection.execute(cluster_config.update().values(**values))
        _record_sources(connection, config, now)
    return True


def compare_config(engine: Engine, config: Config) -> SharedView:
    """This process's view against the recorded definitions (record_config must have run once)."""
    mine = definition_hashes(config)
    with wrap_storage_errors("could not read the recorded configuration"), engine.connect() as connection:
        row = connection.execute(select(cluster_config)).mappings().one()
        recorded: dict[str, str] = dict(connection.execute(
            text("SELECT name, definition_hash FROM sources WHERE definition_hash IS NOT NULL")).tuples().all())
    agreed = frozenset(name for name, digest in mine.items() if recorded.get(name) == digest)
    disagreed = tuple(sorted(set(mine) - agreed))
    return SharedView(row["config_hash"], row["recorded_by"], row["recorded_at"], agreed, disagreed)


def recorded_config_hash(engine: Engine) -> str:
    """The hash of the feeds.toml recorded in the store ("" before any)."""
    with wrap_storage_errors("could not read the recorded configuration"), engine.connect() as connection:
        return str(connection.execute(select(cluster_config.c.config_hash)).scalar_one_or_none() or "")


def warn_if_different(view: SharedView, config: Config) -> None:
    """Say loudly that this process's feeds.toml is not the cluster's, and which sources it leaves alone."""
    if view.matches and view.recorded_hash == config_hash(config):
        return
    shown = ", ".join(view.disagreed[:10]) + (f" and {len(view.disagreed) - 10} more" if len(view.disagreed) > 10 else "")
    log.error(
        "cluster: %s differs from the feeds.toml recorded in the store (hash %s, recorded by %s at %s); "
        "this worker does not poll the %d source(s) whose definition it does not share%s. Deploy the same "
        "file everywhere and record it with `aggregator migrate`", config.path, view.recorded_hash[:12],
        view.recorded_by, view.recorded_at.isoformat(timespec="seconds"), len(view.disagreed),
        f": {shown}" if shown else "",
    )


def _record_sources(connection: Connection, config: Config, now: datetime) -> None:
    from aggregator.daemon.scheduler import CRON_JITTER_SECONDS, cron_trigger  # apscheduler: only here

    rows = {row["name"]: row for row in connection.execute(text(
        "SELECT name, definition_hash, next_poll_at, retired_url, config_url FROM sources")).mappings()}
    settings = config.settings
    for source in config.sources:
        digest = definition_hash(config, source)
        row = rows.pop(source.name, None)
        if row is not None and row["definition_hash"] == digest:
            continue
        interval = config.interval_of(source)
        retired = row is not None and is_retired(row["retired_url"], source.url)
        next_poll: datetime | None = None
        if source.enabled and not retired:
            if row is not None and row["definition_hash"] is None and row["config_url"] in (None, source.url):
                # a store from a single process (or `migrate --to`): resume its schedule
                max_delay = max(interval, settings.max_interval, settings.max_backoff)
                next_poll = resume_at(source.name, _aware(row["next_poll_at"]), interval, max_delay, now)
            else:
                next_poll = now + spread_offset(source.name, min(interval, CHANGED_SPREAD))
            if source.cron is not None:
                trigger = cron_trigger(source.cron, config.timezone_of(source))
                next_poll = trigger.get_next_fire_time(None, next_poll - timedelta(seconds=CRON_JITTER_SECONDS))
        params = {"name": source.name, "digest": digest, "next_poll": next_poll}
        if row is None:
            connection.execute(text("INSERT INTO sources (name, definition_hash, next_poll_at, failures, moved_count)"
                                    " VALUES (:name, :digest, :next_poll, 0, 0)"), params)
        else:
            connection.execute(text("UPDATE sources SET definition_hash = :digest, next_poll_at = :next_poll"
                                    " WHERE name = :name"), params)
    for name in rows:
        connection.execute(text("UPDATE sources SET definition_hash = NULL WHERE name = :name"), {"name": name})


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _digest(data: Mapping[str, Any]) -> str:
    encoded = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()
