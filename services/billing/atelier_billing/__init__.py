"""The billing service: accounts, credit grants, holds, ledger, catalog, orders, memberships.

Layers (enforced by import-linter): ``domain`` (plain Python) ← ``application`` (use cases on
ports) ← ``adapters`` (SQLAlchemy, payment providers) ← ``bootstrap`` (the one composition root)
← ``entrypoints`` (gRPC servicer, CLI).
"""
