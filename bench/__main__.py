"""``python -m bench``: the async-mode matrix (see :mod:`bench.matrix`)."""
from __future__ import annotations

import sys

from bench.matrix import main

if __name__ == "__main__":
    sys.exit(main())
