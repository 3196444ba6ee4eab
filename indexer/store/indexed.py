"""Reading the faces through a chosen index: SQLite's ``INDEXED BY``, where its planner guesses wrong.

Search and the face bitsets read the faces from covering indexes only (never the wide rows that
hold the raw FaceDetail JSON); SQLite's planner, which knows only average rows per value, does
not always see that on its own.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Alias

from .models import faces_table

#: Covering index of every searchable column behind image_id (migration 0002).
SEARCH_INDEX = "ix_faces_search"


class _IndexedFaces(Alias):
    """``faces AS faces_<index> INDEXED BY <index>`` on SQLite; a plain alias elsewhere.

    SQLite's planner, knowing only average rows per value, prefers an attribute index followed by
    a lookup of every candidate's wide row (the raw JSON); the covering indexes are 10x cheaper.
    Index names come from the schema (:mod:`indexer.store.models`), never from a query.
    """

    inherit_cache = True  # the alias name carries the index name, so cached SQL stays right
    index_name: str = ""


@compiles(_IndexedFaces)
def _compile_indexed(element: _IndexedFaces, compiler: Any, **kw: Any) -> str:
    return compiler.visit_alias(element, **kw)


@compiles(_IndexedFaces, "sqlite")
def _compile_indexed_sqlite(element: _IndexedFaces, compiler: Any, **kw: Any) -> str:
    text = compiler.visit_alias(element, **kw)
    if kw.get("asfrom") and element.index_name:
        text += f" INDEXED BY {compiler.preparer.quote(element.index_name)}"
    return text


def indexed(index: str) -> _IndexedFaces:
    alias = _IndexedFaces._construct(faces_table, name=f"f_{index}")
    alias.index_name = index
    return alias


_SEARCH_INDEXES: "weakref.WeakKeyDictionary[Any, frozenset[str]]" = weakref.WeakKeyDictionary()


def search_indexes(conn: Any) -> frozenset[str]:
    """The search indexes this SQLite database has (one not migrated to 0002 lacks them)."""
    key = conn.engine
    if key not in _SEARCH_INDEXES:
        names = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'faces' AND name LIKE 'ix_faces_%'"
        ).scalars()
        _SEARCH_INDEXES[key] = frozenset(names)
    return _SEARCH_INDEXES[key]



def wide_source(conn: Any) -> Any:
    """The faces, read through the covering ``ix_faces_search`` on SQLite when it exists."""
    if conn.dialect.name == "sqlite" and SEARCH_INDEX in search_indexes(conn):
        return indexed(SEARCH_INDEX)
    return faces_table
