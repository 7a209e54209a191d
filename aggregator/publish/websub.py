"""WebSub publisher side: tell the hub which feeds changed, and retry the pings it missed.

W3C WebSub §"Publishing" leaves the publisher→hub notification to the hub; every public hub
(and PubSubHubbub 0.4 before it) takes a form POST `hub.mode=publish` + `hub.url=<topic>` and
answers 2xx. A failing hub never fails publishing: the topics it missed are remembered in
`<output_dir>/.websub-pending.json` and pinged again on the next publish, or by
`retry_pending_pings` when nothing changes (a `poll` that publishes nothing, the daemon's timer).
This module imports httpx for the ping (the only other module besides fetch/client.py to do so).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import httpx

from aggregator.config.load import Settings
from aggregator.errors import PublishError
from aggregator.publish.files import write_if_changed
from aggregator.publish.layout import PENDING_PINGS_FILE

log = logging.getLogger("aggregator.publish.websub")

#: a hub that does not answer within this is treated as down; publishing has already happened
MAX_PING_TIMEOUT_SECONDS = 10.0

#: one read-ping-write of the pending file at a time: a publish pass and the daemon's retry run in
#: different threads, and the later write would otherwise drop the topics the other one kept
_PENDING_LOCK = threading.Lock()

#: (hub_url, topic_url) → None; raises PublishError unless the hub accepted the ping
PingHub = Callable[[str, str], None]


def ping_hub(hub_url: str, topic_url: str, *, timeout_seconds: float, user_agent: str) -> None:
    """POST one publish notification; PublishError unless the hub answers 2xx."""
    try:
        response = httpx.post(
            hub_url,
            data={"hub.mode": "publish", "hub.url": topic_url},
            headers={"User-Agent": user_agent},
            timeout=timeout_seconds,
        )
    except httpx.HTTPError as e:
        raise PublishError(topic_url, f"publish: websub hub {hub_url} unreachable") from e
    if not response.is_success:
        raise PublishError(topic_url, f"publish: websub hub {hub_url} refused {topic_url} (HTTP {response.status_code})")


def default_ping(settings: Settings) -> PingHub:
    """ping_hub with the configured User-Agent and timeout (capped: the hub must not hold up publishing)."""
    timeout_seconds = min(settings.timeout.total_seconds(), MAX_PING_TIMEOUT_SECONDS)
    return partial(ping_hub, timeout_seconds=timeout_seconds, user_agent=settings.user_agent)


def notify_hub(output_dir: Path, hub_url: str, topic_urls: Sequence[str], ping: PingHub) -> list[str]:
    """Ping `topic_urls` and every topic still pending from earlier; return the topics left pending.

    Stops at the first failure (a hub that is down would only fail the rest, each after a
    timeout) and keeps the remaining topics for the next publish.
    """
    pending_path = output_dir / PENDING_PINGS_FILE
    with _PENDING_LOCK:
        topics = list(dict.fromkeys([*read_pending(pending_path), *topic_urls]))
        for index, topic in enumerate(topics):
            try:
                ping(hub_url, topic)
            except PublishError as e:
                left = topics[index:]
                log.warning("%s; %d ping(s) kept for the next publish", e, len(left), extra={"url": topic})
                _write_pending(pending_path, left)
                return left
        _write_pending(pending_path, [])
        return []


def retry_pending_pings(output_dir: Path, settings: Settings) -> list[str]:
    """Retry what a failing hub missed, even when nothing changed (a `poll` that publishes nothing,
    the daemon's timer); the topics left pending. Does nothing without a hub or a pending ping."""
    if not settings.websub_hub or not read_pending(output_dir / PENDING_PINGS_FILE):
        return []
    return notify_hub(output_dir, settings.websub_hub, [], default_ping(settings))


def read_pending(path: Path) -> list[str]:
    try:
        topics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except ValueError:
        log.warning("publish: %s is unreadable; pending websub pings dropped", path)
        return []
    return [topic for topic in topics if isinstance(topic, str)] if isinstance(topics, list) else []


def _write_pending(path: Path, topics: list[str]) -> None:
    if not topics:
        path.unlink(missing_ok=True)
        return
    write_if_changed(path, (json.dumps(topics, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
