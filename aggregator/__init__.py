"""aggregator: a feed aggregator and mirror for regional newspaper news."""

from __future__ import annotations

__version__ = "0.1.0"
