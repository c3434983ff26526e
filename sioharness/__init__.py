"""The harness's own packages, under one name a user's project will not have.

- ``sioharness.core``: the bottom layer (parameter table, scenario specs, figures, schema, run record, paths)
- ``sioharness.webui``: the Locust web UI extension
- ``sioharness.bench``: the runners (async-mode matrix, A/B, capacity, check, web UI launcher, record)
- ``sioharness.dockertools``: the same runs in containers (from a checkout)
- ``sioharness.cli``: the ``sioharness`` command

A locustfile imports the public API from ``loadtests``; reports are ``reports``;
the reference server is ``target_app``.
"""
