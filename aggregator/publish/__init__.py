"""Publish: turn the store into the files subscribers and the website read (feeds, archives, OPML, pages).

`run.publish_categories` is one publish run; the renderers (atom, json_feed, opml, pages/) decide what
a document contains, layout.py where it goes. This package's own import loads nothing: a `poll` that
publishes nothing never pays for the renderers.
"""
