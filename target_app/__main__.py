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
    try:
        serve(settings)
    except OSError as exc:  # the port is taken, the host does not resolve or is not ours
        print(f"target_app: cannot serve on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
