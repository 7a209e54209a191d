"""The HTTP edge: `client` fetches a source's document (the only httpx user besides WebSub pings),
`hosts` keeps per-host politeness and the address policy."""
