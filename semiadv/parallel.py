"""Threads for the per-photo batch jobs (alignment, perturbation, decoding).

OpenCV and TensorFlow release the GIL while they work, so a thread per core keeps every core
busy on per-photo work without the cost of processes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def ordered_map(function: Callable[[T], R], items: Iterable[T],
                workers: int | None = None) -> Iterator[R]:
    """`map(function, items)` on `workers` threads (None: one per core), in input order.

    At most a few items per thread are in flight, so results are not held for a whole
    folder; with one worker it runs in the calling thread.
    """
    workers = workers or available_cores()
    if workers <= 1:
        yield from map(function, items)
        return
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending = collections.deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
