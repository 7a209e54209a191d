"""Many `aggregator run` processes on one PostgreSQL store: leases, politeness, roles, shared documents."""
