"""Orchestration: run cells (a target, a scenario, a load shape), the async-mode matrix,
the capacity search, the CI check, and the web UI launcher.

Commands: ``python -m sioharness.bench`` (the matrix), ``python -m sioharness.bench.capacity``,
``python -m sioharness.bench.check``, ``python -m sioharness.bench.ui``.
"""
