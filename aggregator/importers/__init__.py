"""Bring history and subscriptions in from elsewhere: the legacy Jekyll mirror's posts, OPML lists of feeds."""
