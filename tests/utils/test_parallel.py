"""semiadv.utils.parallel: the ordered, bounded thread and process maps the per-photo jobs share."""

import os
import signal
import sys
import threading
import time

import pytest

from semiadv.utils import parallel


def test_results_come_in_input_order_from_several_threads():
    threads = set()

    def slow_square(value):
        threads.add(threading.get_ident())
        time.sleep(0.002 * (value % 3))  # Later items often finish first.
        return value * value

    assert list(parallel.ordered_map(slow_square, range(40), workers=3)) == [
        v * v for v in range(40)]
    assert len(threads) > 1


def test_only_a_window_of_items_is_taken_ahead_of_the_consumer():
    taken = []

    def items():
        for value in range(1000):
            taken.append(value)
            yield value

    results = parallel.ordered_map(lambda v: v, items(), workers=2)
    assert next(results) == 0
    assert len(taken) <= 4 * 2 + 1  # Not the whole folder.
    results.close()
    taken.clear()
    results = parallel.ordered_map(lambda v: v, items(), workers=2, window=20)
    assert next(results) == 0
    assert 8 < len(taken) <= 20 + 1  # A batch's worth, when asked for.
    results.close()


def test_one_worker_runs_in_the_calling_thread_and_errors_propagate():
    caller = threading.get_ident()
    assert list(parallel.ordered_map(lambda v: threading.get_ident(), range(3), workers=1)) == [
        caller] * 3
    with pytest.raises(ZeroDivisionError):
        list(parallel.ordered_map(lambda v: 1 / (v - 5), range(10), workers=2))


# Process pool. The functions run in worker processes, so they live at module level (they
# pickle by reference; the workers import this module).


def _square_slowly(value):
    time.sleep(0.002 * (value % 3))  # Later items often finish first.
    return value * value, os.getpid()


def _die_on_seven(value):
    if value == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def _fail_on_five(value):
    return 1 / (value - 5)


def _imported_modules(_):
    return {name for name in ("tensorflow", "keras", "semiadv.data.input_pipeline")
            if name in sys.modules}


def _fail_to_start():
    raise OSError("no detector here")


def test_process_map_keeps_input_order_across_processes():
    results = list(parallel.process_map(_square_slowly, range(30), workers=3))
    assert [square for square, _ in results] == [v * v for v in range(30)]
    pids = {pid for _, pid in results}
    assert len(pids) > 1 and os.getpid() not in pids


def test_process_map_of_one_worker_and_errors_raised_for_their_item():
    results = list(parallel.process_map(_square_slowly, range(5), workers=1))
    assert [square for square, _ in results] == [0, 1, 4, 9, 16]
    assert len({pid for _, pid in results}) == 1
    results = parallel.process_map(_fail_on_five, range(10), workers=2)
    assert [next(results) for _ in range(5)] == [1 / (v - 5) for v in range(5)]
    with pytest.raises(ZeroDivisionError):
        next(results)


def test_process_map_workers_do_not_import_tensorflow():
    assert "tensorflow" in sys.modules  # conftest imports it here, in the parent.
    assert list(parallel.process_map(_imported_modules, range(4), workers=2)) == [set()] * 4


def test_a_killed_worker_costs_only_its_item():
    crashes = []

    def crashed(item, reason):
        crashes.append((item, reason))
        return -1

    results = list(parallel.process_map(_die_on_seven, range(20), workers=2, crashed=crashed))
    assert results == [-1 if v == 7 else v for v in range(20)]
    assert crashes == [(7, "worker process was killed by SIGKILL while working on it")]
    with pytest.raises(parallel.WorkerCrashError, match="SIGKILL while working on 7"):
        list(parallel.process_map(_die_on_seven, range(20), workers=2))


def test_a_failing_initializer_stops_the_map_with_its_error():
    with pytest.raises(parallel.WorkerCrashError, match="no detector here"):
        list(parallel.process_map(_square_slowly, range(3), workers=2,
                                  initializer=_fail_to_start))


def test_process_map_takes_only_a_window_and_stops_its_workers_when_closed():
    taken = []

    def items():
        for value in range(1000):
            taken.append(value)
            yield value

    results = parallel.process_map(_square_slowly, items(), workers=2)
    assert next(results)[0] == 0
    assert len(taken) <= 4 * 2 + 1
    pids = {pid for _, pid in [next(results) for _ in range(5)]}
    results.close()
    for pid in pids:  # Reaped by close(): no such process any more.
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    taken.clear()
    results = parallel.process_map(_square_slowly, items(), workers=2, window=20)
    assert next(results)[0] == 0
    assert 8 < len(taken) <= 20 + 1
    results.close()
