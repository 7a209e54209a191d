"""Render feeds.opml: an OPML 2.0 subscription list of every published feed, for one-click import.

Pure and deterministic. Spec: http://opml.org/spec2.opml ("subscription lists": one outline per
feed with type="rss", whatever the feed's format, and its xmlUrl). No dateModified: the list
changes only when the set of feeds does, and a clock would rewrite it on every publish.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from aggregator.config.load import Config
from aggregator.publish.atom import feed_subtitle, feed_title
from aggregator.publish.layout import atom_file, file_url, site_url
from aggregator.publish.xml_text import xml_text

OPML_TITLE = "地方报纸新闻聚合 · 订阅列表"


def render_opml(config: Config, names: Sequence[str]) -> bytes:
    """One outline per feed in `names` (category ids and "all"), in that order."""
    base_url = config.settings.base_url
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = OPML_TITLE
    ET.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = ET.SubElement(opml, "body")
    for name in names:
        title = xml_text(feed_title(config, name))
        outline = ET.SubElement(body, "outline", type="rss", text=title, title=title)
        outline.set("xmlUrl", xml_text(file_url(base_url, atom_file(name))))
        outline.set("htmlUrl", xml_text(site_url(base_url, f"#{name}")))
        description = feed_subtitle(config, name)
        if description:
            outline.set("description", xml_text(description))
    ET.indent(opml)
    document: bytes = ET.tostring(opml, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
