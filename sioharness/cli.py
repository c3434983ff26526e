"""``sioharness COMMAND [ARGS]``: every runner of the harness under one console script.

Each command runs a module as ``python -m MODULE`` would, with the same
arguments and exit status, so an installed harness needs no checkout and a
checkout's ``python -m`` commands stay equivalent.
"""
from __future__ import annotations

import difflib
import runpy
import sys

from sioharness.core.commands import COMMANDS


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items())
    return (f"usage: sioharness COMMAND [ARGS ...]\n\ncommands:\n{rows}\n\n"
            "`sioharness COMMAND --help` shows a command's options.")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"sioharness: unknown command {name!r}{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    module = COMMANDS[name][0]
    saved, sys.argv = sys.argv, [f"sioharness {name}", *rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
