"""How a hint names a harness command: the console script installed, ``python -m`` in a checkout; the dispatcher."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sioharness import cli
from sioharness.core.commands import COMMANDS, command_line


def test_a_hint_names_the_console_script_when_installed_and_the_module_in_a_checkout() -> None:
    assert command_line("report", "results/my run", installed=True) == "sioharness report 'results/my run'"
    assert command_line("report", "results/x", installed=False) == "python -m reports results/x"
    assert command_line("generate", "t.jsonl", installed=False) == "python -m loadtests.generate t.jsonl"
    assert command_line("ab", installed=True) == "sioharness ab"
    assert command_line("report", "r") == "python -m reports r"  # the tests run from a checkout


def test_the_dispatcher_runs_a_commands_module_with_its_arguments() -> None:
    # In a process of its own, as the console script runs: in this one the modules may be imported already.
    def sioharness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sioharness.cli", *args], capture_output=True, text=True,
                              timeout=60)

    missing = sioharness("generate", "/no/such/trace.jsonl")
    assert missing.returncode == 2 and "/no/such/trace.jsonl: No such file" in missing.stderr
    table = sioharness("params")
    assert table.returncode == 0 and "| `payload_bytes` | `--payload-bytes` |" in table.stdout


def test_the_dispatcher_lists_every_command_and_refuses_an_unknown_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in COMMANDS)
    assert cli.main(["repotr"]) == 2
    assert "unknown command 'repotr' (did you mean 'report'?)" in capsys.readouterr().err
    assert cli.main(["zzz"]) == 2 and "did you mean" not in capsys.readouterr().err


def test_the_install_docs_list_every_command_with_its_module() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "own-app.md").read_text(encoding="utf-8")
    for name, (module, _) in COMMANDS.items():
        assert f"| `sioharness {name}` | `python -m {module}` |" in page, name
