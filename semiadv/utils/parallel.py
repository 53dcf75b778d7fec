"""Thread and process pools for the per-photo batch jobs (alignment, perturbation, decoding).

OpenCV, dlib and TensorFlow release the GIL while they work, so a thread per core keeps
every core busy without the cost of processes (BENCHMARKS.md §9d). `process_map` runs per-photo work in worker processes that
never import TensorFlow, for isolation: an item whose worker dies fails alone.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Items taken ahead of the consumer, per worker, by default: enough to keep every worker
# busy while the consumer is slower for a moment, few enough not to hold a whole folder's
# results. Items are handed out only while the consumer asks for results, so a consumer
# that works in batches (a model call) needs a window of about a batch.
_WINDOW_PER_WORKER = 4
# Worker processes that die one after the other without a result mean the workers cannot
# run at all (not one bad item): stop rather than try every item.
_MAX_CRASHES_IN_A_ROW = 5
_HEADER = struct.Struct("!Q")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def ordered_map(function: Callable[[T], R], items: Iterable[T],
                workers: int | None = None, window: int | None = None) -> Iterator[R]:
    """`map(function, items)` on `workers` threads (None: one per core), in input order.

    At most `window` items (None: 4 per thread) are in flight, so results are not held for
    a whole folder; with one worker it runs in the calling thread.
    """
    workers = workers or available_cores()
    if workers <= 1:
        yield from map(function, items)
        return
    window = max(window or _WINDOW_PER_WORKER * workers, workers)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending = collections.deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class WorkerCrashError(RuntimeError):
    """A worker process of `process_map` died (killed, out of memory, a crash in C code)."""


def process_map(function: Callable[[T], R], items: Iterable[T], workers: int | None = None,
                initializer: Optional[Callable[..., None]] = None, initargs: tuple = (),
                crashed: Optional[Callable[[T, str], R]] = None,
                window: int | None = None) -> Iterator[R]:
    """`map(function, items)` in `workers` worker processes (None: one per core), in order.

    The workers are fresh interpreters (`sys.executable`) with the caller's `sys.path`;
    unlike `multiprocessing`'s spawn and forkserver they do not re-import the caller's
    `__main__`, so they import only the modules of `function` and `initializer` (a caller
    holding TensorFlow does not load it in every worker). `function`, `initializer`, the
    items and the results must pickle; functions pickle by reference (module-level, or a
    `functools.partial` of one). Like `ordered_map`, only `window` items are taken ahead of
    the consumer.

    Args:
        function: Applied to each item in a worker.
        items: The inputs.
        workers: Worker processes (None: one per core).
        initializer: Called once in each worker with `initargs` before any item (e.g. to
            build a model the worker keeps); an exception there stops the map.
        crashed: When a worker process dies while running `function(item)`, called in this
            process as `crashed(item, reason)` for that item's result; a new worker takes
            over the items the dead one had not started. None: raise instead.
        window: Items in flight at most (None: 4 per worker), queued evenly at the workers.

    Yields:
        `function(item)` for each item, in input order.

    Raises:
        WorkerCrashError: naming the item, when a worker dies and `crashed` is None, or
            when workers die `_MAX_CRASHES_IN_A_ROW` times in a row, or the initializer fails.
        Any exception `function` raised for an item (when that item's result is due).
    """
    workers = workers or available_cores()
    window = max(window or _WINDOW_PER_WORKER * workers, workers)
    pool = _ProcessPool(workers, function, initializer, initargs)
    try:
        yield from pool.map(items, crashed, window)
    finally:
        pool.close()


def _send(stream, message) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)


def _read_exactly(stream, size: int) -> Optional[bytes]:
    """`size` bytes from an unbuffered stream, or None at end of file."""
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(stream):
    """The next message, or raises EOFError when the other side is gone."""
    header = _read_exactly(stream, _HEADER.size)
    payload = None if header is None else _read_exactly(stream, _HEADER.unpack(header)[0])
    if payload is None:
        raise EOFError
    return pickle.loads(payload)


class _Worker:
    """One worker process with its task and result pipes, and the items queued at it."""

    def __init__(self, setup):
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        # A bootstrap on this module alone: nothing else of the caller's is imported
        # before the setup message names it.
        code = (f"from importlib import import_module; "
                f"import_module({__name__!r})._worker_main({task_read}, {result_write})")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
        self.process = subprocess.Popen([sys.executable, "-c", code],
                                        pass_fds=(task_read, result_write), env=env)
        os.close(task_read)
        os.close(result_write)
        self.tasks = open(task_write, "wb", buffering=0)
        self.results = open(result_read, "rb", buffering=0)
        self.queued = collections.deque()  # (index, item), the first one running
        self.ready = False  # its initializer ran
        for message in setup:
            self._send(message)

    def _send(self, message) -> None:
        try:
            _send(self.tasks, message)
        except BrokenPipeError:
            pass  # It died: its end of file on the results pipe says so, and how.

    def submit(self, index, item) -> None:
        self.queued.append((index, item))
        self._send((index, item))

    def exit_reason(self) -> str:
        code = self.process.wait()
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def close(self, timeout: float = 10.0) -> None:
        for stream in (self.tasks, self.results):
            try:
                stream.close()
            except OSError:
                pass  # A dead worker's pipe.
        try:
            self.process.wait(timeout)  # At the end of its task pipe it exits.
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _ProcessPool:
    def __init__(self, workers, function, initializer, initargs):
        # sys.path first, alone: the functions of the second message unpickle with it.
        self.setup = (list(sys.path), (function, initializer, initargs))
        self.workers = []
        self.selector = selectors.DefaultSelector()
        for _ in range(max(1, workers)):
            self._start()

    def _start(self, position=None):
        worker = _Worker(self.setup)
        if position is None:
            self.workers.append(worker)
        else:
            self.workers[position] = worker
        self.selector.register(worker.results, selectors.EVENT_READ, worker)
        return worker

    def map(self, items, crashed, window):
        items = enumerate(items)
        done = {}  # index -> (status, result), until its turn comes
        next_out, taken, exhausted = 0, 0, False
        self.crashes_in_a_row = 0
        # The queue of a worker: its running item first, the next ones ready so it never
        # waits for this process (which may be busy with its own work between results).
        queue = -(-window // len(self.workers))
        while True:
            # Hand out items while the window and the workers' queues have room.
            while not exhausted and taken - next_out < window:
                worker = min(self.workers, key=lambda w: len(w.queued))
                if len(worker.queued) >= queue:
                    break
                try:
                    index, item = next(items)
                except StopIteration:
                    exhausted = True
                    break
                worker.submit(index, item)
                taken += 1
            while next_out in done:
                status, value = done.pop(next_out)
                next_out += 1
                if status == "raised":
                    raise value
                yield value
            if exhausted and next_out == taken:
                return
            for key, _ in self.selector.select():
                worker = key.data
                try:
                    index, status, value = _receive(worker.results)
                except EOFError:
                    self._replace(worker, done, crashed)
                    continue
                if status == "init_failed":
                    raise WorkerCrashError(f"a worker process failed to start:\n{value}")
                if status == "ready":
                    worker.ready = True
                    continue
                worker.queued.popleft()
                self.crashes_in_a_row = 0
                done[index] = (status, value)

    def _replace(self, dead, done, crashed):
        """Reports the dead worker's running item, re-queues the rest on a new worker."""
        reason = dead.exit_reason()
        self.selector.unregister(dead.results)
        dead.close()
        if not dead.ready:  # Not one bad item: the workers cannot start.
            raise WorkerCrashError(f"a worker process {reason} while starting")
        queued = list(dead.queued)
        if queued:
            index, item = queued[0]
            self.crashes_in_a_row += 1
            message = f"a worker process {reason} while working on {item!r}"
            if crashed is None:
                raise WorkerCrashError(message)
            if self.crashes_in_a_row >= _MAX_CRASHES_IN_A_ROW:
                raise WorkerCrashError(f"{message}, the {self.crashes_in_a_row}th worker "
                                       "to die in a row")
            done[index] = ("ok", crashed(item, f"worker process {reason} while working on it"))
        replacement = self._start(self.workers.index(dead))
        for index, item in queued[1:]:
            replacement.submit(index, item)

    def close(self):
        self.selector.close()
        for worker in self.workers:
            worker.close()


def _worker_main(task_fd: int, result_fd: int) -> None:
    """A worker process's loop: (index, item) in, (index, status, result) out, until EOF."""
    # Ctrl-C reaches the whole process group: the parent handles it and closes the pipes,
    # and this worker then ends after its item, without a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tasks = open(task_fd, "rb", buffering=0)
    results = open(result_fd, "wb", buffering=0)
    try:
        sys.path[:] = _receive(tasks)
        function, initializer, initargs = _receive(tasks)
        if initializer is not None:
            initializer(*initargs)
    except EOFError:
        return  # The parent is gone.
    except BaseException:  # noqa: BLE001  Sent to the parent, which raises it.
        import traceback

        _send(results, (None, "init_failed", traceback.format_exc()))
        return
    _send(results, (None, "ready", None))
    while True:
        try:
            index, item = _receive(tasks)
        except EOFError:
            return
        try:
            message = (index, "ok", function(item))
        except Exception as error:  # noqa: BLE001  Raised in the parent, for this item.
            message = (index, "raised", error)
        try:
            try:
                _send(results, message)
            except (pickle.PicklingError, TypeError, AttributeError) as error:
                _send(results, (index, "raised", RuntimeError(
                    f"the result for {item!r} could not be sent from the worker: {error}")))
        except BrokenPipeError:
            return  # The parent stopped early (an error, or its consumer closed the map).
