"""Orchestration: run cells (a target, a scenario, a load shape), the async-mode matrix,
the capacity search, the CI check, and the web UI launcher.

Commands: ``python -m bench`` (the matrix), ``python -m bench.capacity``,
``python -m bench.check``, ``python -m bench.ui``.
"""
