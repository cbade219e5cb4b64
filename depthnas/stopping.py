"""A run stopped by Ctrl-C or SIGTERM (a scheduler's pre-emption, `timeout`, `docker
stop`) ends with its resume command printed, not with a traceback of its loader
workers, and leaves a run that resumes."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's pre-emption, `timeout`, `docker stop`), stopping a run as
    Ctrl-C does: half-written files are removed and the resume command is printed."""


def _child_exited(signum: int, frame: Any) -> None:
    """SIGCHLD after a stop: the loader workers ending, as they should."""


def _fork_lock_release(info: Any) -> bool:
    """logging's after-fork hook failing to release the lock its before-fork hook did
    not take: the stop was raised in that hook, before it took the lock."""
    return (isinstance(info.exc_value, RuntimeError)
            and getattr(info.object, "__module__", None) == "logging")


@contextlib.contextmanager
def stop_on_signals(signalled: list[int]) -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in the main thread, SIGTERM Terminated. Both
    reach the whole process group, loader workers too, and two of torch's hooks then
    got in the way: its SIGCHLD handler raised "worker killed by signal" over the stop
    (or as a traceback from the loader's __del__), and a stop landing in a fork hook
    was swallowed there (then the loader raised "worker exited unexpectedly").
    `signalled` records the signal, for an error that still comes of it; a swallowed
    stop is raised again by signalling once more.

    A loader worker forked while this handler is set, and signalled before torch sets
    its own, lets the signal pass: it raised the stop inside the worker's start-up, a
    traceback under the resume hint. The run, stopping, shuts its workers down."""
    timers: list[threading.Timer] = []
    home = os.getpid()

    def terminate(signum: int, frame: Any) -> None:
        if os.getpid() != home:  # a forked loader worker, not the run
            return
        signalled.append(signum)
        # Replaces torch's SIGCHLD handler, left so: the loaders, freed after the stop,
        # would raise their workers' deaths in __del__. A handler that does nothing,
        # not SIG_DFL: a SIGCHLD already pending then raised "Signal 17 ignored due to
        # race condition" over the stop.
        signal.signal(signal.SIGCHLD, _child_exited)
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt) and signalled and not ended:
            # (later, not at once: at once it lands in the same hook again)
            timers.append(threading.Timer(0.05, os.kill, (os.getpid(), signalled[-1])))
            timers[-1].start()
        elif signalled and "DataLoaderIter" in repr(info.object):
            pass  # an iterator whose start the stop cut short, freed: nothing to say
        elif signalled and _fork_lock_release(info):
            pass  # the stop landed in logging's fork hook before it took its lock
        else:
            hook(info)

    hook = sys.unraisablehook
    ended = False
    # A signal ignored when the run started stays ignored: a script without job control
    # starts `depthnas search &` so, that the Ctrl-C meant for the script spares it.
    earlier = {sig: signal.signal(sig, terminate) for sig in (signal.SIGINT, signal.SIGTERM)
               if signal.getsignal(sig) != signal.SIG_IGN}
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        ended = True
        for timer in timers:  # the run ended first: no signal after the handler is gone
            timer.cancel()
        for sig, handler in earlier.items():
            signal.signal(sig, handler)
        # after a stop, the loaders it cut short are freed later, with the traceback that
        # holds them: the filter stays for them (the process is ending)
        sys.unraisablehook = unraisable if signalled else hook
