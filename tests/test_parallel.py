"""semiadv.parallel: the ordered, bounded thread map the per-photo jobs share."""

import threading
import time

import pytest

from semiadv import parallel


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


def test_one_worker_runs_in_the_calling_thread_and_errors_propagate():
    caller = threading.get_ident()
    assert list(parallel.ordered_map(lambda v: threading.get_ident(), range(3), workers=1)) == [
        caller] * 3
    with pytest.raises(ZeroDivisionError):
        list(parallel.ordered_map(lambda v: 1 / (v - 5), range(10), workers=2))
