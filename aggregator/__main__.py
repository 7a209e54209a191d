"""`python -m aggregator` runs the command line."""

from __future__ import annotations

import sys

from aggregator.cli import main

if __name__ == "__main__":  # worker processes import the parent's __main__ under another name
    sys.exit(main())
