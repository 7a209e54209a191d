"""`aggregator run`: `scheduler` polls every source on its own schedule, `publish_queue` republishes what
changed, `http` serves /healthz and /metrics beside the feeds."""
