"""Locust entry point in the containers: the harness's locustfile, with more heartbeat slack.

A master and its workers in containers on a busy host (two cores shared with
the target, or with anything else) can miss Locust's default three one-second
heartbeats; the master then drops the worker mid-run and, as seen with
Locust 2.47, may crash on quit. ``LOCUST_HEARTBEAT_LIVENESS`` (default 10)
sets how many missed heartbeats a worker is allowed. Everything else is
``loadtests/locustfile.py`` as is.
"""
from __future__ import annotations

import os

import locust.runners

from loadtests.locustfile import *  # noqa: F401,F403  (the scenario users and the harness hooks)

locust.runners.HEARTBEAT_LIVENESS = int(os.environ.get("LOCUST_HEARTBEAT_LIVENESS", "10"))
