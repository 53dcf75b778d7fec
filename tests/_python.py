"""Runs Python code in a fresh interpreter, for tests of what a process imports or loads."""

import subprocess
import sys


def run_python(code: str, timeout: float = 300, env: dict | None = None):
    """Runs `code` with this test session's interpreter; fails the test unless it exits 0.

    Returns the finished `subprocess.CompletedProcess` (text stdout and stderr).
    """
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=timeout, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed
