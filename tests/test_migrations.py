"""Alembic migrations: from empty to head on SQLite and PostgreSQL, back down, in sync with the
models, and runnable from an installed wheel rather than the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from indexer.store.db import create_db_engine
from indexer.store.migrate import current_revision, downgrade, head_revision, upgrade
from indexer.store.models import metadata

ROOT = Path(__file__).resolve().parents[1]


def test_upgrade_from_empty_creates_every_table_and_is_idempotent(db_url):
    engine = create_db_engine(db_url)
    assert current_revision(engine) is None

    upgrade(engine)
    upgrade(engine)  # a second upgrade is a no-op

    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"images", "faces", "emotions", "runs", "locks", "engines", "alembic_version"} <= tables
    engine.dispose()


def test_models_and_migrations_agree(db_url):
    """An autogenerate diff after upgrading must be empty: no column or index only in one place."""
    engine = create_db_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []
    engine.dispose()


def test_downgrade_to_base_removes_everything(db_url):
    engine = create_db_engine(db_url)
    upgrade(engine)
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


@pytest.mark.slow
def test_migrations_run_from_an_installed_wheel(tmp_path):
    """Build the wheel, install it (no deps) into a bare directory, migrate from outside the checkout."""
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheel_dir), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(wheel_dir.glob("indexer-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "indexer/migrations/env.py" in names
    # every package of the checkout ships (an unlisted subpackage would vanish from installs)
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "indexer").rglob("__init__.py")}
    for package in packages:
        assert f"{package}/__init__.py" in names, f"{package} is missing from the wheel"
    assert any(n.startswith("indexer/migrations/versions/0001") for n in names)

    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True, capture_output=True)
    db = tmp_path / "from-wheel.db"
    script = (
        "import indexer, sys; assert indexer.__file__.startswith(sys.argv[1]), indexer.__file__;"
        "from indexer.cli import main; sys.argv = ['indexer', 'db', 'upgrade', '--db', 'sqlite:///' + sys.argv[2]]; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", script, str(target), str(db)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"is at revision {head_revision()}" in result.stdout


def test_0003_records_the_model_set_of_existing_images(db_url):
    """Rows from before model sets were analysed by the first local models or by Rekognition."""
    from sqlalchemy import text

    engine = create_db_engine(db_url)
    upgrade(engine, "0002")
    with engine.begin() as conn:
        for uri, name in (("/a.jpg", "local"), ("s3://b/c.jpg", "rekognition")):
            conn.execute(
                text(
                    "INSERT INTO images (uri, fingerprint, engine, status, face_count, indexed_at) "
                    "VALUES (:uri, 'f', :engine, 'indexed', 0, CURRENT_TIMESTAMP)"
                ),
                {"uri": uri, "engine": name},
            )
    upgrade(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT uri, model_set FROM images")).all())
    assert rows == {"/a.jpg": "local@1", "s3://b/c.jpg": "rekognition"}
    engine.dispose()


def test_two_processes_migrating_a_fresh_database_at_once_both_succeed(db_url):
    """Two first runs started together (cron, two sources): one migrates, the other waits and
    finds the schema at head; neither fails on a table the other just created."""
    code = (
        "import sys; from indexer.store.db import create_db_engine; from indexer.store.migrate import upgrade; "
        "upgrade(create_db_engine(sys.argv[1])); print('ok')"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in results]
    engine = create_db_engine(db_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
