"""Adapters of the tasks service: SQLAlchemy persistence, the billing gRPC client, local
generation and storage (Pillow, files), event fan-out. They implement ``atelier_ports`` and
``atelier_tasks.application.ports``; only ``atelier_tasks.bootstrap`` chooses among them.
"""
