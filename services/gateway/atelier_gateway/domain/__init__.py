"""Gateway domain: users, roles, refresh-token families, idempotency records, SMS log-in
challenges (``sms``).

Plain standard-library Python; may import ``atelier_ports`` only.
"""
