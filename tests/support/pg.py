"""The PostgreSQL test server: reachable or a clear skip, and a fresh schema per use."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

PG_URL = os.environ.get("INDEXER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_unavailable_reason() -> str | None:
    """None when the server answers, else why the PostgreSQL tests are skipped."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'indexer[postgres]')"
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    try:
        with psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username, password=url.password, dbname=url.database, connect_timeout=3
        ):
            return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {url.render_as_string(hide_password=True)}: {str(exc).splitlines()[0]}"


@contextmanager
def pg_schema_url() -> Iterator[str]:
    """A URL whose connections use a new, empty schema; the schema is dropped afterwards."""
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
