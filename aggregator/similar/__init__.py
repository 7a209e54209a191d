"""Same story, many papers: near-duplicate detection of items across article ids (issue 14).

`text` normalises an item to what makes it a story (no source line, bylines, punctuation or
spacing), `signature` turns that text into a MinHash signature and its LSH band keys, and
`clusters` decides which earlier item, if any, a new item is a reprint of. Storage keeps the
signatures, band keys and story memberships (aggregator/storage/similar.py); publish/stories.py
shows them in the feeds.
"""
