"""Alembic migration scripts, packaged as ``indexer.migrations`` (see pyproject.toml)."""
