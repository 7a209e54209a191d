"""The publisher role: one process at a time (a lease) publishes what the workers stored, once per change.

Workers record owed categories in the same transaction as their items (`publish_owed`); the lease holder
claims them under the store's write lock, renders them into its own output_dir with publish/ (as one
process does) and uploads the changed files to `published_documents`, where the web replicas read them.
Claims are settled after the upload: cleared on success, owed again on failure. A publisher taking the
lease over first puts a dead one's claims back, then publishes everything once, so its own output_dir
(empty on a new machine) holds every feed before it renders single categories.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from aggregator.cluster.documents import upload_changed_files
from aggregator.cluster.leases import take_named_lease
from aggregator.config.load import Config
from aggregator.errors import PublishError, StorageError
from aggregator.publish.layout import output_dir_of
from aggregator.publish.run import publish_categories
from aggregator.storage import SqlStorage

log = logging.getLogger("aggregator.cluster")

#: the named lease only one publisher holds
PUBLISHER_LEASE = "publisher"
#: how often the lease holder looks for owed categories (changes are published in batches this long)
PUBLISH_INTERVAL_SECONDS = 1.0


class ClusterPublisher:
    """`run()` publishes while it holds the publisher lease, until `stop` is set."""

    def __init__(self, storage: SqlStorage, config: Config, worker_id: str, stop: asyncio.Event) -> None:
        self._storage = storage
        #: replaced on a config reload; the next pass uses it
        self.config = config
        self._worker_id = worker_id
        self._stop = stop
        self._holding = False
        #: file → (mtime, size) as last uploaded from output_dir
        self._uploaded: dict[str, tuple[int, int]] = {}

    @property
    def is_holding(self) -> bool:
        return self._holding

    async def run(self) -> None:
        while not self._stop.is_set():
            await self._pass()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), PUBLISH_INTERVAL_SECONDS)
        if self._holding:
            await self._pass()  # what the last polls stored before the stop

    async def _pass(self) -> None:
        lease: timedelta = self.config.settings.lease
        try:
            holding = await asyncio.to_thread(take_named_lease, self._storage.engine, PUBLISHER_LEASE,
                                              self._worker_id, lease)
            if holding and not self._holding:
                log.info("cluster: %s is the publisher now", self._worker_id)
                await asyncio.to_thread(self._take_over)
            self._holding = holding
            if holding:
                await asyncio.to_thread(self._publish_owed)
        except (PublishError, StorageError) as e:
            log.error("%s; publishing again in %.0fs", e, PUBLISH_INTERVAL_SECONDS)

    def _take_over(self) -> None:
        restored = self._storage.restore_publish_claims()
        if restored:
            log.warning("cluster: %d categories claimed by a publisher that stopped are owed again", len(restored))
        publish_categories(self._storage, self.config, None)
        self._uploaded.clear()
        self._upload()

    def _publish_owed(self) -> None:
        categories = self._storage.claim_owed_categories(self._worker_id)
        if not categories:
            return
        try:
            written = publish_categories(self._storage, self.config, categories)
            uploaded = self._upload()
        except BaseException:
            self._storage.settle_publish_claims(categories, published=False)
            raise
        self._storage.settle_publish_claims(categories, published=True)
        if written:
            log.info("publish: rewrote %s (%d documents uploaded)", ", ".join(written), uploaded)

    def _upload(self) -> int:
        return upload_changed_files(self._storage.engine, output_dir_of(self.config), self._uploaded)
