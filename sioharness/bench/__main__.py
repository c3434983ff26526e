"""``python -m sioharness.bench``: the async-mode matrix (see :mod:`sioharness.bench.matrix`)."""
from __future__ import annotations

import sys

from sioharness.bench.matrix import main

if __name__ == "__main__":
    sys.exit(main())
