"""``python -m target_app``: parse settings, patch, then serve."""
from __future__ import annotations

import sys

from .settings import parse_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except ValueError as exc:
        print(f"target_app: {exc}", file=sys.stderr)
        return 2
    # Patch before anything below imports socket, threading or Flask.
    from .patching import patch_for

    if settings.server == "dev":
        patch_for(settings.async_mode)
    from .limits import raise_open_file_limit
    from .serve import serve

    raise_open_file_limit()
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
