"""SQLAlchemy 2 (Core) persistence of tasks, their events and images; Alembic migrations."""
