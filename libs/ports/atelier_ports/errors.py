"""Errors raised by adapters across port boundaries.

Adapters translate driver and vendor errors into these (``raise ProviderUnavailable from e``), so
cores can react without knowing which technology is behind a port.
"""


class PortError(Exception):
    """Base class of adapter-level errors."""


class InvalidNotification(PortError):
    """A webhook/notification could not be verified (signature, timestamp window, format)."""


class ProviderUnavailable(PortError):
    """A vendor or dependency could not be reached or answered with a transient error."""


class ProviderRejected(PortError):
    """A vendor refused the request for a reason that a retry will not fix."""
