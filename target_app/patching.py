"""Monkey-patching for the green async modes.

It must run before anything imports ``socket``, ``threading`` or Flask, so
entry points call ``patch_for(mode)`` first and import the app afterwards.
"""
from __future__ import annotations

import warnings


def patch_for(async_mode: str) -> None:
    if async_mode == "eventlet":
        with warnings.catch_warnings():
            # eventlet warns on import that it is in bugfix-only mode; the
            # harness measures it on purpose.
            warnings.simplefilter("ignore")
            import eventlet
        eventlet.monkey_patch()
    elif async_mode == "gevent":
        from gevent import monkey

        monkey.patch_all()
