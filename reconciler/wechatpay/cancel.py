"""Waits that a caller's `threading.Event` cuts short, so that Ctrl-C stops queued calls at once.

A call waits in three places before its request goes on the wire: for a rate-limit token, for
a concurrency slot and, between attempts, for the retry back-off. Each wait here raises
`Cancelled` as soon as the event is set; the session turns that into `RequestCancelled`, which
knows the call. Nothing here ever interrupts a request that is already being sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# threading cannot wait on a semaphore and an event at once, so a slot wait looks at the
# event this often; a freed slot still wakes the waiter at once.
SLOT_POLL_SECONDS = 0.01


class Cancelled(Exception):
    """The cancel event was set before the wait ended (internal; callers see `RequestCancelled`)."""


def check(cancel: threading.Event | None) -> None:
    """Raise `Cancelled` if `cancel` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled


def pause(seconds: float, sleep: Callable[[float], None], cancel: threading.Event | None) -> None:
    """Wait `seconds`, raising `Cancelled` if `cancel` is set before or during the wait.

    The real `time.sleep` is replaced by `cancel.wait`, which wakes the moment the event is set.
    An injected sleep (a test's or a benchmark's fake clock) is called as it is, with the event
    checked before and after it.
    """
    if cancel is None:
        sleep(seconds)
    elif sleep is time.sleep:
        if cancel.wait(seconds):
            raise Cancelled
    else:
        check(cancel)
        sleep(seconds)
        check(cancel)


def take_slot(slots: threading.Semaphore, cancel: threading.Event | None) -> None:
    """Take one of `slots`; raise `Cancelled`, holding none, if `cancel` is set by then.

    The event is looked at once more after the slot is taken: that is the last moment before
    the caller sends, so a call that waited for its slot never starts after a cancel.
    """
    if cancel is None:
        slots.acquire()
        return
    check(cancel)
    while not slots.acquire(timeout=SLOT_POLL_SECONDS):
        check(cancel)
    if cancel.is_set():
        slots.release()
        raise Cancelled
