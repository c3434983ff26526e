"""Container health check: exit 0 when the target's /healthz answers 200.

Runs inside the target container (``HEALTHCHECK`` in docker/Dockerfile), so
it asks the target on its own loopback at ``$TARGET_PORT``.
"""
from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("TARGET_PORT", "5000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthz: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
