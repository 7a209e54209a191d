"""`aggregator migrate --to postgresql://…`: a SQLite store copied into PostgreSQL, verified by counts, then
served and polled from there as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator import cli
from aggregator.storage import SqlStorage, open_storage
from tests.conftest import fresh_store_url
from tests.fixture_server import FixtureServer, Route


def _rss(prefix: str, count: int) -> bytes:
    items = "".join(f"<item><title>{prefix} {i}</title><link>https://example.com/{prefix}/{i}.html</link>"
                    f"<guid>{prefix}-{i}</guid><description>body {i}</description></item>" for i in range(count))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{prefix}</title>'
            f"<link>https://example.com/</link>{items}</channel></rss>").encode()


def test_migrate_copies_a_sqlite_store_into_postgresql_and_verifies_every_table(
    feed_server: FixtureServer, tmp_path: Path, request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed_server.routes["/a.xml"] = Route(body=_rss("a", 7), etag='"a1"')
    feed_server.routes["/b.xml"] = Route(body=_rss("b", 4))
    feed_server.routes["/gone.xml"] = Route(status=500)
    config = tmp_path / "feeds.toml"
    config.write_text(
        '[settings]\nallow_private_networks = true\nper_host_delay = "0.01s"\nmax_items_per_feed = 3\n\n'
        '[categories.news]\ntitle = "News"\n[categories.more]\ntitle = "More"\n\n'
        f'[[sources]]\nname = "a"\nurl = "{feed_server.url("/a.xml")}"\ncategories = ["news"]\n\n'
        f'[[sources]]\nname = "b"\nurl = "{feed_server.url("/b.xml")}"\ncategories = ["news", "more"]\n\n'
        f'[[sources]]\nname = "gone"\nurl = "{feed_server.url("/gone.xml")}"\ncategories = ["more"]\n',
        encoding="utf-8")
    monkeypatch.delenv("AGGREGATOR_STORE", raising=False)
    assert cli.main(["-q", "poll", "--config", str(config)]) == 0
    sqlite = open_storage(str(tmp_path / "store" / "aggregator.db"))
    before_items = sqlite.list_items_in_order("news", start=0, limit=100)
    before_states = sqlite.get_source_states()
    sqlite.close()
    archive = (tmp_path / "store" / "feeds" / "archive" / "news" / "1.atom").read_bytes()
    capsys.readouterr()

    with fresh_store_url("postgresql", tmp_path, request) as url:
        assert cli.main(["migrate", "--config", str(config), "--to", url]) == 0
        out, err = capsys.readouterr()
        assert "migrate: items: 11/11" in err
        rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.endswith(("ok", "MISMATCH"))}
        assert rows["items"] == ["11", "11", "ok"]
        assert rows["sources"] == ["3", "3", "ok"]
        assert rows["item_categories"] == ["15", "15", "ok"]
        assert all(cells[-1] == "ok" for cells in rows.values()) and "published_documents" in rows
        assert "verified" in out and "recorded as the cluster's configuration (3 sources)" in out

        pg = open_storage(url)
        try:
            assert isinstance(pg, SqlStorage)
            # same positions: archive pages are the same pages
            assert pg.list_items_in_order("news", start=0, limit=100) == before_items
            after_states = pg.get_source_states()
            assert after_states["a"].etag == '"a1"' and after_states == before_states
            with pg.engine.connect() as connection:
                from sqlalchemy import select

                from aggregator.storage.schema import published_documents

                body = connection.execute(select(published_documents.c.body).where(
                    published_documents.c.path == "archive/news/1.atom")).scalar_one()
            assert bytes(body) == archive
        finally:
            pg.close()
        # a second copy into the now non-empty store is refused
        assert cli.main(["migrate", "--config", str(config), "--to", url]) == 1
        assert "already holds items" in capsys.readouterr().err
