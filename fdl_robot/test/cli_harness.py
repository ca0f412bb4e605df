"""Run a command of this package in a subprocess and read its one-line failure."""
from __future__ import annotations

import os
import subprocess
import sys


def run_python(*argv: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python <argv>`` with this interpreter, output captured, stdin closed."""
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def failure_line(proc: subprocess.CompletedProcess) -> str:
    """The last stderr line of a process that exited 1 without a traceback."""
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return [ln for ln in proc.stderr.splitlines() if ln.strip()][-1]
