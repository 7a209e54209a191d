"""A published website to test against: the 60 legacy posts imported as `import-jekyll` does, and
the index as it reads at the legacy scale. Test support only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from zoneinfo import ZoneInfo

from aggregator.config.load import Config, Settings
from aggregator.importers.jekyll import import_legacy_posts
from aggregator.publish.layout import output_dir_of
from aggregator.publish.run import publish_categories, with_learnt_categories
from aggregator.publish.atom import feed_title
from aggregator.publish.files import write_with_gzip
from aggregator.publish.layout import INDEX_FILE
from aggregator.publish.pages.index import IndexLine, render_index
from aggregator.storage import Storage, open_storage

T0 = datetime(2022, 6, 1, 8, 0, tzinfo=UTC)
#: generated media for the legacy-scale index: two-syllable pinyin-ish names over the alphabet
_SYLLABLES = ["an", "bei", "chang", "da", "e", "fu", "guang", "hai", "jiang", "kai", "lan", "ming", "nan", "ou",
              "ping", "qing", "ri", "shan", "tian", "wan", "xin", "yang", "zhong", "21shiji", "it"]


def site_config(root: Path, base_url: str, **settings: object) -> Config:
    return Config(
        path=root / "feeds.toml",
        settings=Settings(**{"base_url": base_url, "output_dir": Path("site"), "store": str(root / "store.db"),  # type: ignore[arg-type]
                             "max_items_per_feed": 10, "page_size": 10, **settings}),
    )


def legacy_scale_index(storage: Storage, config: Config, count: int) -> None:
    """Rewrite the published index as it reads with `count` more categories (media named like legacy
    slugs, every first letter used), through the real renderer and writer: the legacy scale without
    publishing 2,000 feeds."""
    stats = storage.category_stats()
    lines = [IndexLine(name, feed_title(with_learnt_categories(config, storage.category_titles()), name),
                       s.item_count, s.last_updated) for name, s in stats.items()]
    for n in range(count):
        first, second = _SYLLABLES[n % len(_SYLLABLES)], _SYLLABLES[(n // len(_SYLLABLES)) % len(_SYLLABLES)]
        slug = f"{first}{second}ribao{n}"
        lines.append(IndexLine(slug, f"{slug}报新闻", 1 + n % 300, T0 + timedelta(minutes=n)))
    index = render_index(lines, base_url=config.settings.base_url, zone=ZoneInfo(config.settings.timezone),
                         total_items=storage.count_items() + count)
    write_with_gzip(output_dir_of(config) / INDEX_FILE, index)


def build_legacy_site(storage: Storage, config: Config, legacy_posts: Path) -> None:
    with storage.writer_lock(30):
        import_legacy_posts(storage, config, [legacy_posts])
        publish_categories(storage, config, None)


def open_site_storage(config: Config) -> Storage:
    return open_storage(config.settings.store)
