"""Opening the database: URL normalisation, SQLite pragmas, clean errors, migrations.

SQLite gets WAL mode (readers never block the writer, a killed run never corrupts the file),
foreign keys (so deleting an image cascades to its faces) and a busy timeout (two processes
sharing a file wait instead of failing). PostgreSQL URLs without a driver get psycopg 3.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from ..errors import ConfigError, FatalError, mask_url


def default_db_url() -> str:
    """SQLite in the user's data directory: a stable place for a cron job's index."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'indexer' / 'index.db'}"


def normalize_url(url: str) -> URL:
    """Parse a database URL; a bare ``postgresql://`` gets the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"invalid database URL: {mask_url(url)}") from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"unsupported database {parsed.get_backend_name()!r} in {mask_url(url)}: use sqlite or postgresql")
    return parsed


def create_db_engine(url: str, *, pool_size: int = 5) -> Engine:
    """A SQLAlchemy engine for ``url``, with the pragmas and pool this tool relies on."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    try:
        return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    except ImportError as exc:
        raise ConfigError(f"PostgreSQL driver missing ({exc.name}): pip install 'indexer[postgres]'") from None


def _sqlite_engine(parsed: URL) -> Engine:
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if in_memory:
        engine = create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):  # pragma: no cover - exercised by every sqlite test
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    return engine


def check_reachable(engine: Engine) -> None:
    """Raise a one-line :class:`FatalError` when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise unreachable(engine, exc) from None


def unreachable(engine: Engine, exc: OperationalError) -> FatalError:
    """The one line that says the database cannot be reached, and why."""
    reason = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc).strip() else "unreachable"
    return FatalError(f"database unreachable: {mask_url(str(engine.url))}: {reason}")
