"""Alembic migrations, run from the installed package (a wheel or pipx install), not only a checkout.

The scripts live in the repository's top-level ``migrations/`` and are packaged as
``indexer.migrations``; we locate them through the import system, never through the working
directory, so ``indexer db upgrade`` works wherever the tool is installed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

#: Any constant key: concurrent `indexer` processes on PostgreSQL upgrade one at a time.
_PG_MIGRATION_LOCK = 7_220_414_001


def migrations_dir() -> Path:
    """``indexer/migrations`` in an installed wheel; the checkout's ``migrations/`` otherwise."""
    package_root = Path(__file__).resolve().parents[1]
    for candidate in (package_root / "migrations", package_root.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError(f"alembic migrations not found beside {package_root}: the installation is incomplete")


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``. Cheap when already there (one SELECT)."""
    if revision == "head" and current_revision(engine) == head_revision():
        return
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        # One migrator at a time (two first runs on a fresh database start together under cron):
        # the other waits, then finds the schema at head. PostgreSQL: an advisory lock; SQLite:
        # the database's write lock, taken up front (pysqlite would not begin before DDL at all).
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
