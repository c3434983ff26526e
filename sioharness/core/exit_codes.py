"""Exit statuses of the harness's commands, one meaning each (README, "Exit codes").

=====  ==================================================================
0      ok: every cell ran and the checks passed
1      a cell failed, a check failed, or Locust counted failed requests
2      bad input: an argument, a profile, a thresholds or baseline file
3      a watchdog deadline ended the run (it hung)
4      nothing measured: every connect, or every call, failed
5      samples lost: the recorder could not write every sample (disk full?)
130    interrupted (Ctrl-C, SIGTERM, SIGHUP); the results so far are kept
=====  ==================================================================
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_WATCHDOG = 3
EXIT_NOTHING_MEASURED = 4
EXIT_SAMPLES_LOST = 5
EXIT_INTERRUPTED = 130
