"""Running a service process: background loops beside a server, and waiting for the signal to
stop (SIGINT or SIGTERM)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class BackgroundLoop:
    """A daemon thread running ``target(stop_event)`` until :meth:`stop` sets the event."""

    thread: threading.Thread
    join_seconds: float
    stop_event: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=self.join_seconds)


def start_background(
    name: str, target: Callable[[threading.Event], None], *, join_seconds: float
) -> BackgroundLoop:
    stop_event = threading.Event()
    thread = threading.Thread(target=target, args=(stop_event,), name=name, daemon=True)
    loop = BackgroundLoop(thread=thread, join_seconds=join_seconds, stop_event=stop_event)
    thread.start()
    return loop


def catch_stop_signals() -> threading.Event:
    """From now on SIGINT and SIGTERM set the returned event instead of ending the process
    (main thread only). Call it before announcing readiness: a signal sent right after the
    announcement must stop the process cleanly."""
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    return stopped


def wait_for_stop_signal() -> None:
    """Block until SIGINT or SIGTERM (main thread only)."""
    catch_stop_signals().wait()
