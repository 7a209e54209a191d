"""A published website to test against: the 60 legacy posts imported as `import-jekyll` does, plus
generated categories up to the legacy scale. Test support only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.categories import category_title
from aggregator.config.load import Config, Settings
from aggregator.importers.jekyll import import_legacy_posts
from aggregator.models import Item, ItemChange
from aggregator.publish import publish_categories
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


def generated_categories(count: int) -> list[Item]:
    """`count` categories (one item each) named like legacy media slugs, every first letter used."""
    items = []
    for n in range(count):
        first, second = _SYLLABLES[n % len(_SYLLABLES)], _SYLLABLES[(n // len(_SYLLABLES)) % len(_SYLLABLES)]
        slug = f"{first}{second}ribao{n}"
        moment = T0 + timedelta(minutes=n)
        items.append(Item(
            article_id=f"NW{202206010000000000 + n}", title=f"{slug} 的一条新闻：本地经济稳步增长", url=f"https://finance.eastmoney.com/a/{n}.html",
            html=f"<p>第 {n} 篇正文。</p>", published=moment, updated=moment, categories=frozenset({slug}),
            sources=frozenset({"generated"}), content_hash=f"g{n}",
        ))
    return items


def build_legacy_site(storage: Storage, config: Config, legacy_posts: Path, extra_categories: int = 0) -> None:
    with storage.writer_lock(30):
        import_legacy_posts(storage, config, [legacy_posts])
        if extra_categories:
            items = generated_categories(extra_categories)
            storage.apply_update([ItemChange("insert", i, "generated", i.content_hash) for i in items], None)
            storage.add_category_titles({next(iter(i.categories)): category_title(f"{next(iter(i.categories))}报")
                                         for i in items})
        publish_categories(storage, config, None)


def open_site_storage(config: Config) -> Storage:
    return open_storage(config.settings.store)
