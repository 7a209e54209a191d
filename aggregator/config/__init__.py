"""feeds.toml -> Config: `load` parses and validates, `values` checks single values, `lines` maps a key
back to its line, `diff` compares two configs for a live reload."""
