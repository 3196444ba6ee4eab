"""Shared pieces of the indexer benchmarks (bench/throughput.py, bench/rerun.py).

- :class:`MotoS3` - a moto S3 server in a child process of its own (so its CPU does not share a
  GIL with the fake Rekognition endpoint or the measured client), bound to 127.0.0.1, port 0.
  The child exits when its stdin closes, so it never outlives the benchmark.
- :func:`fake_rekognition` - tests/support's Rekognition JSON endpoint, started and stopped.
- :func:`aws_env` - the standard AWS variables pointing boto3 at both endpoints.
- :func:`put_objects` / :func:`list_objects` - many-threaded uploads and a paginated listing.
- :func:`run_cli` - ``python -m indexer ...`` as a child; its JSON summary, wall time and peak RSS
  (from ``wait4``: that child's own rusage, not the other children's).
- :func:`pg_schema` - a fresh PostgreSQL schema, dropped afterwards.
- :class:`Report` - the table of figures with PASS/FAIL per target.

Everything started here binds 127.0.0.1 and is stopped by its own id.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

_MOTO_CHILD = r"""
import json, logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"{host} {port}", flush=True)


def bulk(command):
    # Straight into this server's S3 backend (a setup shortcut for 100k-object buckets; the
    # objects are then listed and read over HTTP like any others).
    import time
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    body = open(command["body_path"], "rb").read()
    started = time.monotonic()
    for i in range(command["count"]):
        backend.put_object(command["bucket"], command["key_format"].format(i=i), body)
    return time.monotonic() - started


for line in sys.stdin:   # until the parent closes our stdin (or dies)
    try:
        print("ok %.3f" % bulk(json.loads(line)), flush=True)
    except Exception as exc:
        print("error %s: %s" % (type(exc).__name__, exc), flush=True)
server.stop()
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- servers ----------------------------------------------------------------------------------


class MotoS3:
    """A moto S3 server in a child process; use as a context manager."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> "MotoS3":
        env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MOTO_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        line = _readline_within(self.proc, 60.0)
        host, port = line.split()
        self.url = f"http://{host}:{port}"
        return self

    def bulk_put(self, bucket: str, key_format: str, count: int, body: bytes, workdir: Path) -> float:
        """``count`` objects named ``key_format.format(i=i)``, written inside the server process.

        Falls back to many-threaded PUTs if the backend shortcut fails (a moto upgrade).
        Returns the seconds it took.
        """
        body_path = workdir / "bulk-body.bin"
        body_path.write_bytes(body)
        command = {"bucket": bucket, "key_format": key_format, "count": count, "body_path": str(body_path)}
        started = time.monotonic()
        self.proc.stdin.write(json.dumps(command) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        reply = _readline_within(self.proc, 600.0, kill=False)
        if reply.startswith("ok "):
            return time.monotonic() - started
        log(f"  bulk load in the moto process failed ({reply.strip()}); falling back to PUTs")
        items = [(key_format.format(i=i), body) for i in range(count)]
        return put_objects(self.url, bucket, items, threads=16)

    def __exit__(self, *exc: Any) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(Exception):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()  # this child only, by its own handle
            proc.wait(timeout=10)


def _readline_within(proc: subprocess.Popen, timeout: float, kill: bool = True) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not box or not box[0].strip():
        if kill:
            proc.kill()
            raise RuntimeError("moto server did not start")
        return "error: no reply"
    return box[0]


@contextlib.contextmanager
def fake_rekognition(s3_url: str, *, latency: float = 0.0, admit_per_second: float | None = None,
                     fault_rate: float = 0.0, seed: int = 0, faces: Iterable[tuple[bytes, list]] = ()) -> Iterator[Any]:
    """tests/support's FakeRekognition with this behaviour and these registered faces, running."""
    from tests.support.rekognition_endpoint import Behaviour, FakeRekognition

    fake = FakeRekognition(
        s3_endpoint=s3_url,
        behaviour=Behaviour(latency=latency, admit_per_second=admit_per_second, fault_rate=fault_rate, seed=seed),
    )
    for content, details in faces:
        fake.register(content, details)
    fake.timeline = []  # (monotonic time, outcome) of every call, for per-second figures
    record = fake._record

    def timed_record(operation, kind, key, size, outcome):
        record(operation, kind, key, size, outcome)
        fake.timeline.append((time.monotonic(), outcome))

    fake._record = timed_record
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def aws_env(s3_url: str, rekognition_url: str | None, workdir: Path) -> dict[str, str]:
    """A child environment: test credentials, both endpoints, no user config leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "INDEXER_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(workdir / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "aws-credentials"),
        AWS_ENDPOINT_URL_S3=s3_url,
        XDG_CONFIG_HOME=str(workdir / "xdg-config"),
        XDG_DATA_HOME=str(workdir / "xdg-data"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    if rekognition_url:
        env["AWS_ENDPOINT_URL_REKOGNITION"] = rekognition_url
    return env


# -- S3 ---------------------------------------------------------------------------------------


def s3_client(url: str, pool: int = 10) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(max_pool_connections=pool, retries={"mode": "standard", "max_attempts": 5}),
    )


def put_objects(url: str, bucket: str, items: Sequence[tuple[str, bytes]], *, threads: int = 16,
                every: int = 10000) -> float:
    """PUT every (key, body) with ``threads`` threads; returns the seconds it took."""
    client = s3_client(url, pool=threads + 2)
    started = time.monotonic()
    done = [0]
    lock = threading.Lock()

    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=item[0], Body=item[1], ContentType="image/jpeg")
        with lock:
            done[0] += 1
            if done[0] % every == 0:
                log(f"  put {done[0]:,}/{len(items):,} ({done[0] / (time.monotonic() - started):,.0f}/s)")

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(put, items):
            pass
    return time.monotonic() - started


def list_objects(url: str, bucket: str, prefix: str) -> list[dict[str, Any]]:
    client = s3_client(url)
    out: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(page.get("Contents", ()))
    return out


# -- the CLI as a child process ---------------------------------------------------------------


def run_cli(args: Sequence[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """``python -m indexer *args`` with a time bound; its JSON summary, wall time, peak RSS.

    Peak RSS is the child's ``VmHWM`` (the high-water mark of its own process image since exec),
    polled from /proc while it runs. Not ``ru_maxrss`` from ``wait4``: on Linux that counts the
    RSS the child had at fork, which is this (large) bench process's, not the indexer's.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "indexer", *args], stdout=out, stderr=err, env=env, cwd=ROOT)
        timed_out = False
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.monotonic() - started > timeout:
                timed_out = True
                proc.terminate()  # SIGTERM: the indexer drains and records the run as interrupted
                try:
                    _, status, usage = _wait4_within(proc.pid, 40.0)
                except TimeoutError:
                    proc.kill()
                    _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    summary: dict[str, Any] = {}
    for line in reversed(stdout.strip().splitlines()):
        try:
            summary = json.loads(line)
            break
        except ValueError:
            continue
    return {
        "summary": summary,
        "wall_s": wall,
        "maxrss_mb": peak_kb / 1024.0,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "stderr": stderr[-2000:],
    }


def _vm_hwm_kb(pid: int) -> int:
    """The process's peak resident set since exec, in kB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _wait4_within(pid: int, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got == pid:
            return got, status, usage
        time.sleep(0.05)
    raise TimeoutError


# -- PostgreSQL -------------------------------------------------------------------------------


def pg_unavailable(url: str) -> str | None:
    """None when PostgreSQL at ``url`` answers, else why not (the tests' own probe)."""
    from tests.support.pg import pg_unavailable_reason

    return pg_unavailable_reason(url)


def pg_schema(base_url: str, prefix: str = "bench"):
    """A URL whose connections live in a new schema; the schema is dropped afterwards."""
    from tests.support.pg import fresh_schema

    return fresh_schema(base_url, prefix)


class Report:
    """Rows of (figure, value, target, PASS/FAIL or blank), printed as one aligned table."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, name: str, value: Any, fmt: str = "{}", target: str = "", ok: bool | None = None) -> None:
        shown = fmt.format(value) if value is not None else "n/a"
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append((name, shown, target, verdict))

    def section(self, name: str) -> None:
        self.rows.append((f"-- {name}", "", "", ""))

    def print(self) -> None:
        header = ("figure", "value", "target", "result")
        widths = [max(len(r[i]) for r in [header, *self.rows] if not r[0].startswith("-- ")) for i in range(4)]
        line = "  ".join("-" * w for w in widths)
        print()
        print(self.title)
        print(line)
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        print(line)
        for row in self.rows:
            if row[0].startswith("-- "):
                print(row[0])
                continue
            print("  ".join([row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]), row[3]]))
        print(line, flush=True)


def timeline_table(timeline: list[tuple[float, str]], refused: str, faults: Sequence[str]) -> str:
    """Calls per second of the run: ok / refused (over the ceiling) / faults."""
    if not timeline:
        return "(no calls)"
    start = timeline[0][0]
    buckets: dict[int, list[int]] = {}
    for moment, outcome in timeline:
        row = buckets.setdefault(int(moment - start), [0, 0, 0])
        row[0 if outcome == "ok" else 1 if outcome == refused else 2 if outcome in faults else 0] += 1
    lines = ["  second    ok  refused  faults"]
    for second in range(max(buckets) + 1):
        ok, ref, flt = buckets.get(second, [0, 0, 0])
        lines.append(f"  {second:6d}  {ok:4d}  {ref:7d}  {flt:6d}")
    return "\n".join(lines)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started
