"""Feeds PostgreSQL ``NOTIFY atelier_task_events`` into the in-process hub, so a watcher on one
replica wakes up when a task changes on another."""

from __future__ import annotations

import logging
import threading

import psycopg

from atelier_tasks.adapters.db.repository import NOTIFY_CHANNEL
from atelier_tasks.adapters.events import InProcessEventHub

log = logging.getLogger("atelier.tasks.notify")


class PostgresNotificationListener:
    def __init__(self, libpq_url: str, hub: InProcessEventHub) -> None:
        self._url = libpq_url
        self._hub = hub
        hub.feeds_from_notify = True
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tasks-listen", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        self._ready.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    # Whatever was notified while this connection was down is lost: every
                    # watcher re-reads once (a wake-up changes nothing when nothing changed).
                    self._hub.publish_all()
                    self._ready.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._hub.notified(note.payload)
            except Exception:
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                self._stop.wait(1.0)
