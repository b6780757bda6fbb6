"""Billing's use cases: one module per use case or small group, each a handler class built once
with its typed dependencies and called with a small frozen command/query dataclass.

May import the domain, ``atelier_ports`` (clock, ids, the error taxonomy, paging) and billing's
own ports (``application.ports``); never adapters, entrypoints, SQLAlchemy or gRPC.
"""
