"""Billing adapters: SQLAlchemy persistence and payment providers."""
