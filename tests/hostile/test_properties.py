"""Property tests: arbitrary bytes and arbitrary JSON through parse → identity → clean → publish.

Whatever a server sends, parsing a document either returns or raises the package's own
AggregatorError (nothing foreign escapes the per-source stage), one item's failure costs that item
only (the per-item boundary of issue 10 §1 skips it, whatever it raised), and whatever reaches
publishing renders as well-formed XML (Atom, OPML) and valid JSON (JSON Feed), never raising.
Examples are bounded so the suite stays fast.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from aggregator.config.load import CategoryConfig, Config, Settings, SourceConfig
from aggregator.errors import AggregatorError
from aggregator.items import build_item, find_candidates
from aggregator.models import Fetched, Item
from aggregator.parse import parse
from aggregator.publish.run import with_learnt_categories
from aggregator.publish.archive import plan_archive
from aggregator.publish.atom import describe_feed, render_atom
from aggregator.publish.json_feed import render_json_feed
from aggregator.publish.opml import render_opml

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
URL = "http://hostile.example/feed"
FEED = SourceConfig(name="feed", url=URL, categories=("h",), category_from="medium")
JSON_API = SourceConfig(name="api", url=URL, kind="json", preset="eastmoney", categories=("h",), category_from="medium")
CONFIG = Config(path=Path("/srv/news/feeds.toml"), settings=Settings(), categories={"h": CategoryConfig(title="h")}, sources=(FEED, JSON_API))
STRICT = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: characters that break XML or URLs, beside ordinary and CJK text
_NASTY = st.lists(st.sampled_from(["\0", "\u0001", "\x7f", "\ufffe", "\ud800", "&", "<", "]]>", "[", "南", "a", " "]),
                  max_size=12).map("".join)
_URLS = st.one_of(_NASTY.map("http://x.example/NW2022012422578317/".__add__),
                  st.sampled_from(["http://[oops/", "javascript:alert(1)", "http://x.example/a b"]))
_STRINGS = st.one_of(st.text(max_size=30), _NASTY, _URLS, st.just("NW2022012422578317"))
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), _STRINGS),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_STRINGS, children, max_size=4)),
    max_leaves=20,
)
#: records shaped like eastmoney's, with arbitrary values in the known fields
RECORDS = st.lists(st.one_of(
    JSON_VALUES,
    # mostly a valid id, so the record survives identity and its other fields reach publishing
    st.fixed_dictionaries({"infoCode": st.one_of(st.just("NW2022012422578317"), JSON_VALUES),
                           "title": st.one_of(_NASTY, JSON_VALUES), "datetime": JSON_VALUES,
                           "medianame": st.one_of(_NASTY, JSON_VALUES), "url_w": st.one_of(_URLS, JSON_VALUES),
                           "digest": st.one_of(_NASTY, JSON_VALUES)}),
), max_size=4)


def run_pipeline(body: bytes, source: SourceConfig) -> None:
    """One document through every stage; asserts what reaches publishing is well-formed."""
    fetched = Fetched(url=URL, final_url=URL, status=200, headers={}, body=body, fetched_at=NOW)
    try:
        feed = parse(fetched, source, "Asia/Shanghai")
    except AggregatorError:
        return
    items: list[Item] = []
    titles: dict[str, str] = {}
    for raw in feed.items:
        try:  # one item at a time, as the per-item boundary runs it
            found = find_candidates([raw], source, {})
            titles.update(found.new_category_titles)
            items.extend(build_item(candidate, source.url, source.clean, NOW) for candidate in found.candidates)
        except Exception:  # noqa: BLE001 - the per-item boundary: any failure skips this item only
            continue
    config = with_learnt_categories(CONFIG, titles)
    for name in config.categories:
        in_category = [item for item in items if name in item.categories]
        document = describe_feed(config, name, plan_archive(len(in_category), 100))
        etree.fromstring(render_atom(document, in_category, config), STRICT)
        json.loads(render_json_feed(document, in_category, config))
    etree.fromstring(render_opml(config, list(config.categories)), STRICT)


@EXAMPLES
@given(body=st.one_of(
    st.binary(max_size=300),
    st.builds(lambda t, b: (t + b.decode("latin-1")).encode("utf-8", "surrogatepass"),
              st.sampled_from(['<rss version="2.0"><channel><item><title>', "<feed xmlns='http://www.w3.org/2005/Atom'><entry><id>",
                               '<rss version="2.0"><channel><item><guid>NW2022012422578317</guid><link>http://x.example/']),
              st.binary(max_size=200)),
))
def test_arbitrary_bytes_at_a_feed_source_raise_only_our_errors_and_publish_well_formed_xml(body: bytes) -> None:
    run_pipeline(body, FEED)


@EXAMPLES
@given(document=st.one_of(
    JSON_VALUES,
    st.builds(lambda records: {"rc": 1, "records": records}, RECORDS),
    st.builds(lambda items: {"version": "https://jsonfeed.org/version/1.1", "items": items}, st.lists(JSON_VALUES, max_size=4)),
))
def test_arbitrary_json_at_json_and_feed_sources_raises_only_our_errors_and_publishes_well_formed_xml(
    document: object,
) -> None:
    body = json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
    run_pipeline(body, JSON_API)
    run_pipeline(body, FEED)
