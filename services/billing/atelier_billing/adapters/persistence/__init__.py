"""SQLAlchemy 2 persistence of billing (SQLite and PostgreSQL) and its Alembic migrations."""
