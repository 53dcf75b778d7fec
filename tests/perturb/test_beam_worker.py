"""Tests of semiadv.perturb.beam.worker: SDK worker processes skip their teardown only on the
DirectRunner."""

import dataclasses
import os
import sys

import pytest

pytest.importorskip("apache_beam", reason="apache_beam not installed (pip install -e '.[beam]')")

from semiadv.perturb.beam import steps  # noqa: E402
from semiadv.perturb.beam import worker  # noqa: E402
from semiadv.perturb.beam.config import BeamPerturbConfig  # noqa: E402


def test_workers_skip_their_teardown_only_when_the_config_says_so(monkeypatch):
    registered = []
    monkeypatch.setattr(worker.atexit, "register", registered.append)
    monkeypatch.setattr(worker, "_exit_registered", False)
    worker_main = os.path.join("/venv", "apache_beam", "runners", "worker",
                               "sdk_worker_main.py")
    monkeypatch.setattr(sys, "argv", [worker_main])
    config = BeamPerturbConfig("e", "same", (8, 8, 3), "p", "i", "o")
    for do_fn in (steps.PreparePhoto(config), steps.WriteOutput(config)):
        do_fn.setup()
    assert registered == []  # Not on the DirectRunner: the harness's exit code stands.
    fast = dataclasses.replace(config, fast_worker_exit=True)
    steps.WriteOutput(fast).setup()
    assert registered == [worker._exit_without_finalizing]


def test_only_sdk_worker_processes_skip_their_teardown(monkeypatch):
    registered = []
    monkeypatch.setattr(worker.atexit, "register", registered.append)
    monkeypatch.setattr(worker, "_exit_registered", False)
    monkeypatch.setattr(sys, "argv", ["pytest", "tests/perturb/test_beam.py"])
    worker.exit_fast_in_sdk_worker()  # The driver, or an in-process runner.
    assert registered == []
    worker_main = os.path.join("/venv", "apache_beam", "runners", "worker",
                               "sdk_worker_main.py")
    monkeypatch.setattr(sys, "argv", [worker_main])
    worker.exit_fast_in_sdk_worker()
    worker.exit_fast_in_sdk_worker()  # Every DoFn's setup calls it: registered once.
    assert registered == [worker._exit_without_finalizing]

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    # Not the real ones: pytest's log handlers must survive, and so must this process.
    monkeypatch.setattr(worker.logging, "shutdown", lambda: None)
    monkeypatch.setattr(worker.os, "_exit", fake_exit)
    monkeypatch.delattr(sys, "last_value", raising=False)
    monkeypatch.delattr(sys, "last_exc", raising=False)
    with pytest.raises(Exited) as exited:
        registered[0]()
    assert exited.value.args == (0,)
    # The harness raised (an uncaught exception sets sys.last_value): the exit code says so.
    monkeypatch.setattr(sys, "last_value", RuntimeError("harness failed"), raising=False)
    with pytest.raises(Exited) as exited:
        registered[0]()
    assert exited.value.args == (1,)
