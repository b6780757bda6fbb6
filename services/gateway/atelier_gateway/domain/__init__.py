"""Gateway domain: users, roles, refresh-token families, idempotency records.

Plain standard-library Python; may import ``atelier_ports`` only.
"""
