"""feedparser's 2,107 test documents as 2,107 sources of one `aggregator poll --all`, beside two healthy sources.

Each document is served with its `Header:` lines as real HTTP response headers (Content-Type with a
charset, ETag, Last-Modified …). The contract: every document feedparser can read, we read (issue 10
§7); the only one refused is the document with no root element at all, with a clear message; the
healthy sources publish exactly what they serve; everything published is well-formed XML; memory and
time stay bounded; and the next `poll` works.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixture_server import FixtureServer
from tests.hostile.feedparser_corpus import corpus_documents, corpus_route, route_path
from tests.hostile.harness import MEMORY_BOUND_MIB, ExtraSource, Installation

CORPUS_SIZE = 2107
#: the one document feedparser recognises as no format at all: a comment and nothing else
REFUSED = {"illformed/rss_empty_document.xml": "parse: not an RSS or Atom document (no root element)"}
#: 2,107 fetches, parses and stores on two shared cores, with room for a loaded machine
PASS_BOUND_SECONDS = 120


@pytest.mark.slow
def test_feedparser_corpus_is_ingested_in_one_poll_beside_healthy_sources(
    tmp_path: Path, feed_server: FixtureServer, feedparser_corpus_dir: Path
) -> None:
    documents = corpus_documents(feedparser_corpus_dir)
    assert len(documents) == CORPUS_SIZE
    installation = Installation(tmp_path, feed_server, str(tmp_path / "store" / "aggregator.db"),
                                settings={"per_host_concurrency": "32", "concurrency": "64"})
    names = {}
    for index, path in enumerate(documents):
        url_path = route_path(feedparser_corpus_dir, path)
        feed_server.routes[url_path] = corpus_route(path)
        relative = path.relative_to(feedparser_corpus_dir)
        names[f"corpus-{index:04d}"] = relative.as_posix()
        installation.extra.append(ExtraSource(f"corpus-{index:04d}", url_path, category=f"corpus-{relative.parts[0]}"))
    installation.write()

    run = installation.poll(timeout=PASS_BOUND_SECONDS)
    status = installation.status()

    errors = {names[name]: row["last_error"] for name, row in status.items() if name in names and row["last_error"]}
    assert errors == REFUSED
    assert all(re.match(r"^(fetch|parse): ", message) for message in errors.values())
    assert sum(status[name]["last_error"] is None for name in names) == CORPUS_SIZE - len(REFUSED)
    installation.assert_healthy_published()
    installation.assert_every_published_file_is_well_formed()
    assert run.peak_rss_mib < MEMORY_BOUND_MIB, run
    assert run.seconds < PASS_BOUND_SECONDS, run
    # the next poll opens the same store and works (the healthy sources answer 304 now)
    again = installation.poll("--source", "healthy-rss", "--source", "healthy-atom")
    assert "2 sources: 0 with new items" in again.stdout
    installation.assert_healthy_published()
