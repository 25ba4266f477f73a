"""Ctrl-C and SIGTERM as an exception raised only where a trial can still be told.

A signal that arrives while trials train raises `Interrupted` at once, so the scheduler marks the
trials in flight failed ('interrupted'). One that arrives during a storage call (ask, report, tell,
counting) is held and raised at the next safe point: an exception inside a storage call could leave a
trial RUNNING with nobody to tell it. Later signals are ignored while the first is being handled.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM; `exit_code` is the shell's 128 + signal number (130, 143)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _Guard:
    def __init__(self) -> None:
        self.installed = False
        self.armed = False  # True while training: raise at once
        self.pending: int | None = None  # a held signal
        self.raised = False

    def handle(self, signum: int, frame: object) -> None:
        if self.raised:
            return
        if self.armed:
            self.raised = True
            raise Interrupted(signum)
        self.pending = signum

    def check(self) -> None:
        """Raise a held signal now."""
        if self.pending is not None and not self.raised:
            self.raised = True
            raise Interrupted(self.pending)


_guard = _Guard()


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """Install the SIGINT/SIGTERM handlers for the block (main thread only; inside such a block already,
    nothing changes)."""
    if threading.current_thread() is not threading.main_thread() or _guard.installed:
        yield
        return
    previous = {signum: signal.signal(signum, _guard.handle) for signum in SIGNALS}
    _guard.installed, _guard.pending, _guard.raised = True, None, False
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _guard.installed = False


def check_interrupt() -> None:
    """A safe point: raise Interrupted if a signal arrived since the last one."""
    _guard.check()


@contextmanager
def interruptible() -> Iterator[None]:
    """Signals raise at once inside the block (training); a held one raises on entry."""
    if not _guard.installed:
        yield
        return
    _guard.check()
    _guard.armed = True
    try:
        yield
    finally:
        _guard.armed = False
