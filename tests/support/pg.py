"""The PostgreSQL test server: reachable or a clear skip, and a fresh schema per use.

``pg_schema_url()`` gives a URL whose connections live in a new schema, dropped afterwards;
``pg_url`` is the same as a session-scoped fixture (import it into a test module). Tests are
skipped, with the reason, when the server at ``INDEXER_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) cannot be reached.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import Iterator

import pytest

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def base_pg_url() -> str:
    return os.environ.get("INDEXER_TEST_PG_URL", DEFAULT_PG_URL)


PG_URL = base_pg_url()


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def pg_unavailable_reason(url: str | None = None) -> str | None:
    """None when the server at ``url`` answers, else why (the reason tests are skipped)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = url or base_pg_url()
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        finally:
            engine.dispose()
    except ImportError as exc:
        return f"PostgreSQL driver missing ({exc.name}): pip install 'indexer[postgres]'"
    except Exception as exc:
        text = str(getattr(exc, "orig", None) or exc).strip()
        return f"PostgreSQL not reachable at {shown}: {text.splitlines()[0] if text else type(exc).__name__}"
    return None


@contextmanager
def fresh_schema(url: str, prefix: str = "t") -> Iterator[str]:
    """``url`` with its connections in a new, empty schema; the schema is dropped afterwards."""
    from sqlalchemy import create_engine

    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(url, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@contextmanager
def pg_schema_url(prefix: str = "t") -> Iterator[str]:
    """A fresh schema on the test server, or a skip that says why the server is unusable."""
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with fresh_schema(base_pg_url(), prefix) as url:
        yield url


@pytest.fixture(scope="session")
def pg_url():
    """A session-wide URL in a schema of its own (``q_<random>``), dropped at the end."""
    with pg_schema_url("q") as url:
        yield url
