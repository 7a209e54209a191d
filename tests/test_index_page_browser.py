"""The index page in a real headless Chromium: categories render, feeds are autodiscoverable.

Headless Chromium's --dump-dom and --screenshot run through script themselves, so "no JavaScript
needed" is checked on the markup (tests/test_publish_index_page.py) and on the DOM here.

Saves test-artifacts/index-page.png (a phone-sized screenshot) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import html

from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.models import Item, ItemChange
from aggregator.publish import publish_categories
from aggregator.serve import create_app
from aggregator.storage import open_storage
from tests.conftest import REPO_ROOT
from tests.test_serve import RunningServer

CHROMIUM = "/usr/bin/chromium"
BROWSER_TIMEOUT_SECONDS = 90
#: a common phone viewport (CSS pixels)
PHONE_WINDOW = "412,1600"
T0 = datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)


def chromium() -> str:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found is None:
        message = "chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run_chromium(browser: str, profile: Path, *args: str) -> str:
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", f"--window-size={PHONE_WINDOW}",
        "--hide-scrollbars", *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_SECONDS, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def index_url(tmp_path: Path) -> Iterator[str]:
    server = RunningServer()
    config = Config(
        path=tmp_path / "feeds.toml",
        settings=Settings(base_url=server.base_url, output_dir=Path("feeds"), max_items_per_feed=5),
        categories={
            "nantongribao": CategoryConfig(title="南通日报新闻", description="南通日报的本地新闻"),
            "yangzhou": CategoryConfig(title="扬州日报新闻"),
        },
        sources=(SourceConfig(name="南通日报", url="https://example.org/nt.json", categories=("nantongribao",)),),
    )
    storage = open_storage(str(tmp_path / "store.db"))
    try:
        items = [
            Item(
                article_id=f"NW2022012422578{n:05d}", title=title, url=f"https://finews.example/a/{n}.html",
                html="<p>正文</p>", published=T0 + timedelta(hours=n), updated=T0 + timedelta(hours=n),
                categories=frozenset({"nantongribao"}), sources=frozenset({"南通日报"}), content_hash=f"h{n}",
            )
            for n, title in enumerate(
                ["聚焦可持续发展 中天科技全面启动绿色低碳制造行动", "南通港吞吐量创新高", "崇川区新添三座口袋公园",
                 "通州湾示范区重大项目集中开工", "海门端午龙舟赛开赛", "如皋长寿文化节开幕",
                 "启东沿海风电并网发电"]
            )
        ]
        storage.apply_update([ItemChange("insert", i, "南通日报", i.content_hash) for i in items], None)
        publish_categories(storage, config)
        server.start(create_app(config))
        yield server.base_url
    finally:
        server.stop()
        storage.close()


def test_the_index_renders_every_category_with_autodiscovery_links_in_chromium(
    index_url: str, tmp_path: Path
) -> None:
    browser = chromium()
    dom = html.fromstring(run_chromium(browser, tmp_path / "profile", "--dump-dom", index_url))
    assert [h.text_content() for h in dom.xpath("//section/h2")] == ["南通日报新闻", "扬州日报新闻", "全部新闻"]
    assert "共 7 篇" in dom.xpath('//section[@id="nantongribao"]')[0].text_content()
    discovery = dom.xpath('//link[@rel="alternate"][@type="application/atom+xml"]/@href')
    assert discovery == ["feeds/nantongribao.atom", "feeds/yangzhou.atom", "feeds/all.atom"]
    assert dom.xpath("//script") == []
    headlines = dom.xpath('//section[@id="nantongribao"]//li/a/text()')
    assert headlines[0] == "启东沿海风电并网发电" and len(headlines) == 5

    artifacts = REPO_ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    screenshot = artifacts / "index-page.png"
    screenshot.unlink(missing_ok=True)
    run_chromium(browser, tmp_path / "profile", f"--screenshot={screenshot}", index_url)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
