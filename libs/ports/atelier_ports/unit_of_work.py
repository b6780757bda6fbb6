"""The unit of work every service's core uses the same way.

A unit is one transaction: it begins on ``__enter__`` and ends on ``commit()``, ``rollback()`` or
``__exit__`` (which rolls back unless committed); ``commit()`` does not start another one, and no
use case opens a unit inside another. Each service extends this Protocol with its repositories
(``BillingUnitOfWork``, ``TasksUnitOfWork``, ``GatewayUnitOfWork``).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self


class UnitOfWork(Protocol):
    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back unless committed."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...
