"""Use cases of the tasks service (create saga, reads, cancel, watch, uploads) and the worker.

Depends on ``atelier_tasks.domain`` and the ``atelier_ports`` protocols only; adapters are
passed in by ``atelier_tasks.bootstrap``.
"""
