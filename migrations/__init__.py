"""Alembic environment and versions: the only way flowaudit's schema changes."""
