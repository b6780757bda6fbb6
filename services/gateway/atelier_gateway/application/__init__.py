"""Gateway use cases (sign-up, log-in, token rotation, profile, idempotency) and the ports
they need (unit of work, repositories, password hasher, token issuer, billing accounts).

Plain Python; may import ``atelier_gateway.domain`` and ``atelier_ports`` only.
"""
