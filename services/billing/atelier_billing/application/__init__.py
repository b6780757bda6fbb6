"""Billing use cases. Depends on the domain and on ports only (atelier_ports and the
repository/unit-of-work protocols in ``application.ports``)."""
