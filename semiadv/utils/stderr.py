"""Hiding what C++ code writes to the process's stderr (file descriptor 2) for a block.

TensorFlow's import and LiteRT's interpreter log from C++ straight to descriptor 2, where no
Python logging setting reaches; the only way to hide those lines is to point the descriptor
at /dev/null while they are written. A lock keeps two threads from interleaving the swap
(one of them would otherwise restore /dev/null as "the" stderr for good).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

_LOCK = threading.Lock()


@contextlib.contextmanager
def to_devnull():
    """Points file descriptor 2 at /dev/null for a block (Python's sys.stderr is flushed
    first; anything written to it from other threads meanwhile is lost too, so keep the
    block short)."""
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # No real stderr (an embedded interpreter): nothing to hide.
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def cpp_info_hidden(environ=os.environ) -> bool:
    """Whether C++ INFO lines are to be hidden: TF_CPP_MIN_LOG_LEVEL >= 1, TensorFlow's own
    knob (the binaries set it to 3 unless SEMIADV_VERBOSE=1), honoured here for LiteRT too."""
    try:
        return int(environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) >= 1
    except ValueError:
        return False
