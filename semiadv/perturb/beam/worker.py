"""What each Beam worker process does once: import TensorFlow's side, report its start-up
costs as metrics, and (on the DirectRunner) exit without interpreter teardown.

The driver imports this module too, but never calls `import_faces`: it only builds and
launches the pipeline, and TensorFlow's import and teardown would add seconds to every run
(BENCHMARKS.md §8c).
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import sys
import time

# TensorFlow's C++ start-up chatter buries the binary's own output (workers inherit it).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_IMPORT_START = time.perf_counter()  # Each worker's share of the start-up: these imports.

from apache_beam.metrics import Metrics  # noqa: E402

_IMPORT_S = time.perf_counter() - _IMPORT_START

METRICS_NAMESPACE = "semiadv"
# The TensorFlow side of the per-photo step, imported by a worker for its first photo.
_FACES_MODULE = "semiadv.perturb.faces"
# The module the DirectRunner's multi_processing workers (and Dataflow's) run as __main__.
_SDK_WORKER_MAIN = os.path.join("apache_beam", "runners", "worker", "sdk_worker_main.py")
_exit_registered = False
# Start-up costs of this process, reported once as metrics from inside a bundle (metrics
# updated in setup() belong to no bundle and are dropped).
_startup = {"import_s": _IMPORT_S, "load_model_s": None}


def import_faces():
    """`semiadv.perturb.faces`, imported on first use, its import counted in this worker's
    start-up. It brings TensorFlow, which the driver must not import."""
    if _FACES_MODULE in sys.modules:
        return sys.modules[_FACES_MODULE]
    start = time.perf_counter()
    faces = importlib.import_module(_FACES_MODULE)
    if _startup["import_s"] is not None:
        _startup["import_s"] += time.perf_counter() - start
    return faces


def record_load_model(seconds):
    """Records how long this worker took to load the export (reported by `report_startup`)."""
    _startup["load_model_s"] = seconds


def report_startup(name):
    """Emits this process's start-up cost `name` ("import_s" or "load_model_s") once, as a
    distribution in microseconds."""
    seconds = _startup.get(name)
    if seconds is not None:
        Metrics.distribution(METRICS_NAMESPACE, f"startup_{name[:-2]}_us").update(
            int(1e6 * seconds))
        _startup[name] = None


def _exit_without_finalizing():
    """atexit hook of SDK worker processes: exits now, with the interpreter's exit code.

    The harness has returned when this runs: every bundle is finished (outputs renamed in
    place) and its log handler closed. What is skipped is only the interpreter's teardown of
    TensorFlow's modules; the DirectRunner stops its workers one after the other, waiting for
    each process to end, so their teardowns would end every run (BENCHMARKS.md §8c).
    """
    # An uncaught exception ending the harness's main sets these (last_exc from Python 3.12).
    failed = any(getattr(sys, name, None) is not None for name in ("last_value", "last_exc"))
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001  A closed stream has nothing left to flush.
            pass
    os._exit(1 if failed else 0)


def exit_fast_in_sdk_worker():
    """In an SDK worker process (not the driver, not an in-process runner), ends the process
    without interpreter teardown once the harness is done. Idempotent; cheap to call."""
    global _exit_registered
    if not _exit_registered and sys.argv and sys.argv[0].endswith(_SDK_WORKER_MAIN):
        # Registered last, so it runs first: the handlers it skips are teardown only.
        atexit.register(_exit_without_finalizing)
        _exit_registered = True
