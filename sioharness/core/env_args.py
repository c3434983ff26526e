"""``python -m sioharness.core.env_args NAME [NAME ...] -- COMMAND ...``: run COMMAND with each variable's words.

The Makefile's option lists (``AB_ARGS``, ``UI_ARGS``, ``PYTEST_ARGS``) are
typed by a user or a CI workflow. Written into a recipe they would be shell
text, and a value holding `` `id` `` or ``$(id)`` would run. Exported as
environment variables instead and split here like a shell's words (quotes
group, nothing is evaluated or expanded), they stay data:
``AB_ARGS="--b-arg='--handler-cost-us 20'"`` is one argument.
"""
from __future__ import annotations

import os
import shlex
import sys
from typing import Sequence


def words(names: Sequence[str], environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """Each variable's words, in order; ValueError naming a variable shlex cannot split."""
    out: list[str] = []
    for name in names:
        try:
            out += shlex.split(environ.get(name, ""))
        except ValueError as exc:
            raise ValueError(f"{name}: cannot split {environ.get(name, '')!r} into words ({exc})") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args or args.index("--") == len(args) - 1:
        print("usage: python -m sioharness.core.env_args NAME [NAME ...] -- COMMAND ...", file=sys.stderr)
        return 2
    split = args.index("--")
    names, command = args[:split], args[split + 1:]
    try:
        extra = words(names)
    except ValueError as exc:
        print(f"env_args: {exc}", file=sys.stderr)
        return 2
    os.execvp(command[0], [*command, *extra])


if __name__ == "__main__":
    sys.exit(main())
