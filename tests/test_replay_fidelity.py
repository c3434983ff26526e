"""A recorded session replayed by 20x the users keeps the recorded mix and timing (the fidelity report).

The one recording test that needs the machine to itself: the replay's gaps between events are held against the
recording's, and a starved load generator stretches them. The other recording tests (``test_record_generate.py``)
run in the shares; this file runs after them, alone.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT
from tests.test_record_generate import record, record_and_generate


@pytest.mark.slow
@pytest.mark.alone  # the replay's gaps are held against the recording's: a starved load generator stretches them
def test_record_the_classic_app_generate_and_replay_at_20x(tmp_path: Path) -> None:
    """Chatters and lurkers recorded; the generated locustfile replayed by 20x the users keeps the mix."""
    trace, code = record_and_generate(tmp_path)

    # 20x the recorded sessions for 20 s, recorded in turn, and compared with the recording.
    replayed = tmp_path / "replay.jsonl"
    record(tmp_path, replayed, [sys.executable, "-m", "locust", "-f", str(tmp_path / "locustfile.py"),
                                     "--headless", "-u", "80", "-r", "80", "-t", "20s", "--host", "{url}",
                                     "--loglevel", "WARNING"], mode="gevent")
    fidelity = subprocess.run([sys.executable, "-m", "reports.fidelity", str(trace), str(replayed),
                               "--out", str(tmp_path / "fidelity.md")], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=60)
    assert fidelity.returncode == 0, fidelity.stdout + fidelity.stderr
    for event in ("my_event", "my_room_event", "join"):
        assert f"| `{event}` |" in fidelity.stdout, fidelity.stdout
    assert "Every figure within bounds" in fidelity.stdout
    # No secret of the recording (the session cookies' values) in the trace or the generated file.
    secrets = [v for v in (tmp_path / "cookies.txt").read_text().split() if len(v) > 8]
    assert len(secrets) == 4
    for text in (trace.read_text(), replayed.read_text(), code):
        assert not any(secret in text for secret in secrets)
