"""The operator's view of a running mirror: `status` (per-source table), `metrics` (Prometheus),
`progress` (the progress bar of a poll or import)."""
