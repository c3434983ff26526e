"""The harness's bottom layer: concepts every other package shares.

It imports nothing of the harness, so the target, the load generator, the
web UI, the reports and the orchestration can all build on it: the sample
schema, the run record, cell names, the scenario list, the ``/stats``
client, atomic file writes, and version and machine info.
"""
