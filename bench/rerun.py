#!/usr/bin/env python
"""A re-run over a large, already indexed bucket: zero engine calls, planner speed, memory.

    python bench/rerun.py                          # 100,000 objects; SQLite (temp file) and PostgreSQL
    python bench/rerun.py --objects 5000           # a quick smoke run
    python bench/rerun.py --db sqlite:///x.db --no-pg
    python bench/rerun.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Sets up a local S3 (moto server, its own process) holding ``--objects`` small ``.jpg`` objects
(one small JPEG body; written inside the moto process, a set-up shortcut), lists them for their
ETags, and for each database (``--db``, default a SQLite file in a temp dir; then PostgreSQL in a
fresh schema, dropped at the end):

1. creates the schema (``Store.open``) and bulk-inserts one ``images`` row per object, exactly as
   a run would have left it (uri, fingerprint ``etag:<etag>``, engine rekognition, indexed);
2. the planner against the database alone: every ImageRef through ``indexer.planner.plan`` with
   a Store (no S3), timed (best and median of ``--repeat``) -> keys/s;
3. ``indexer index s3://... --json`` as a child process against a Rekognition endpoint that
   counts calls: engine calls (must be 0), wall time, end-to-end keys/s (bounded by moto's
   listing), and the child's peak RSS (its own VmHWM: see _harness.run_cli).

Targets (issue): planner >= 20,000 keys/s against the database, peak RSS < 250 MB, zero engine
calls. Always exits 0: these are measurements.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

BUCKET = "bench-rerun"
PREFIX = "library/"
KEY_FORMAT = PREFIX + "img-{i:07d}.jpg"
PLANNER_TARGET = 20_000
RSS_TARGET_MB = 250


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100_000, help="objects in the bucket (default 100000)")
    parser.add_argument("--db", default=None, help="first database (default: SQLite file in a temp dir)")
    parser.add_argument("--pg-url", default=h.DEFAULT_PG_URL, help=f"PostgreSQL server for the second run (default {h.DEFAULT_PG_URL})")
    parser.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL run")
    parser.add_argument("--repeat", type=int, default=3, help="planner timings per database (default 3)")
    return parser.parse_args(argv)


def seed_index(url: str, listing: list[dict]) -> float:
    """Create the schema and insert one indexed row per listed object; returns seconds."""
    from sqlalchemy import delete, insert

    from indexer.store.models import images_table
    from indexer.store.repository import Store, utcnow

    started = time.perf_counter()
    store = Store.open(url)
    try:
        now = utcnow()
        rows = [
            {
                "uri": f"s3://{BUCKET}/{obj['Key']}",
                "fingerprint": "etag:" + obj["ETag"].strip('"'),
                "size": int(obj["Size"]),
                "engine": "rekognition",
                "status": "indexed",
                "face_count": 0,
                "indexed_at": now,
            }
            for obj in listing
        ]
        with store.engine.begin() as conn:
            conn.execute(delete(images_table).where(images_table.c.uri.startswith(f"s3://{BUCKET}/{PREFIX}")))  # a reused --db file
            for start in range(0, len(rows), 20_000):
                conn.execute(insert(images_table), rows[start : start + 20_000])
    finally:
        store.close()
    return time.perf_counter() - started


def time_planner(url: str, listing: list[dict], repeat: int) -> dict:
    """Every ImageRef (as S3Source makes them) through planner.plan with a Store; no S3."""
    from indexer.core import ImageRef
    from indexer.planner import PlanOptions, plan
    from indexer.store.repository import Store

    refs = [
        ImageRef(
            uri=f"s3://{BUCKET}/{obj['Key']}",
            size=int(obj["Size"]),
            fingerprint="etag:" + obj["ETag"].strip('"'),
            content_type="image/jpeg",
            s3_location=(BUCKET, obj["Key"]),
        )
        for obj in listing
    ]
    store = Store.open(url, migrate=False)
    times, todo, listed = [], 0, 0
    try:
        for _ in range(max(1, repeat)):
            todo = listed = 0
            started = time.perf_counter()
            for batch in plan(iter(refs), store, PlanOptions("rekognition"), run_id=0):
                listed += batch.listed
                todo += len(batch.todo)
            times.append(time.perf_counter() - started)
    finally:
        store.close()
    return {
        "best_s": min(times),
        "median_s": statistics.median(times),
        "keys_s_best": listed / min(times),
        "keys_s_median": listed / statistics.median(times),
        "listed": listed,
        "todo": todo,
    }


def rerun(moto_url: str, db_url: str, workdir: Path, n: int) -> dict:
    with h.fake_rekognition(moto_url) as fake:
        env = h.aws_env(moto_url, fake.url, workdir)
        run = h.run_cli(["index", f"s3://{BUCKET}/{PREFIX}", "--db", db_url, "--json", "--quiet"], env,
                        timeout=120.0 + n * 0.01)
        run["engine_calls"] = fake.count()
    return run


def measure(label: str, db_url: str, moto_url: str, listing: list[dict], workdir: Path, args, report: h.Report) -> None:
    n = len(listing)
    h.log(f"[{label}] seeding {n:,} indexed rows")
    seed_s = seed_index(db_url, listing)
    h.log(f"[{label}]   seeded in {seed_s:.1f}s; timing the planner x{args.repeat}")
    planner = time_planner(db_url, listing, args.repeat)
    h.log(f"[{label}]   planner {planner['keys_s_best']:,.0f} keys/s best; re-running the CLI")
    run = rerun(moto_url, db_url, workdir, n)
    summary = run["summary"]
    if run["returncode"] != 0 or not summary:
        h.log(f"[{label}]   indexer exited {run['returncode']}: {run['stderr']}")
    h.log(f"[{label}]   {summary}")

    report.section(f"{label}: {h_mask(db_url)}")
    report.add("seed: bulk insert of the images rows", seed_s, "{:.1f} s")
    report.add("planner vs DB: keys/s (best)", planner["keys_s_best"], "{:,.0f}", f">= {PLANNER_TARGET:,}",
               planner["keys_s_best"] >= PLANNER_TARGET)
    report.add(f"planner vs DB: keys/s (median of {args.repeat})", planner["keys_s_median"], "{:,.0f}", f">= {PLANNER_TARGET:,}",
               planner["keys_s_median"] >= PLANNER_TARGET)
    report.add("planner vs DB: keys needing work", planner["todo"], "{:,}", "0", planner["todo"] == 0)
    report.add("re-run: exit status / run status", f"{run['returncode']} / {summary.get('status', '?')}"
               + (" (TIMED OUT)" if run["timed_out"] else ""))
    report.add("re-run: wall time (process)", run["wall_s"], "{:.1f} s")
    report.add("re-run: elapsed_s (run's own)", summary.get("elapsed_s"), "{:.1f} s")
    listed = summary.get("listed") or 0
    report.add("re-run: listed / skipped unchanged", f"{listed:,} / {summary.get('skipped_unchanged', 0):,}", "{}",
               f"= {n:,}", listed == n and summary.get("skipped_unchanged") == n)
    e2e = listed / summary["elapsed_s"] if summary.get("elapsed_s") else None
    report.add("re-run: end-to-end keys/s (moto listing incl.)", e2e, "{:,.0f}")
    report.add("re-run: engine calls (endpoint count)", run["engine_calls"], "{:,}", "0", run["engine_calls"] == 0)
    report.add("re-run: api_calls (indexer's own count)", summary.get("api_calls"), "{}")
    report.add("re-run: peak RSS of the child", run["maxrss_mb"], "{:.0f} MB", f"< {RSS_TARGET_MB} MB",
               run["maxrss_mb"] < RSS_TARGET_MB)


def h_mask(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    report = h.Report(f"bench/rerun.py: re-run over {args.objects:,} already indexed objects")
    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp, h.MotoS3() as moto:
        workdir = Path(tmp)
        from tests.support.images import jpeg_bytes

        h.s3_client(moto.url).create_bucket(Bucket=BUCKET)
        h.log(f"moto S3 at {moto.url}; writing {args.objects:,} objects")
        put_s = moto.bulk_put(BUCKET, KEY_FORMAT, args.objects, jpeg_bytes(1, (32, 24)), workdir)
        h.log(f"  written in {put_s:.1f}s; listing them for their ETags")
        listing, list_s = h.timed(lambda: h.list_objects(moto.url, BUCKET, PREFIX))
        h.log(f"  listed {len(listing):,} in {list_s:.1f}s")
        report.section("set-up")
        report.add("objects written (inside moto)", len(listing), "{:,}")
        report.add("write time", put_s, "{:.1f} s")
        report.add("moto listing (boto3 paginator) keys/s", len(listing) / list_s, "{:,.0f}")

        first = args.db or f"sqlite:///{workdir / 'index.db'}"
        if first.startswith("postgresql"):
            with h.pg_schema(first, "bench_rerun") as url:
                measure("PostgreSQL (--db)", url, moto.url, listing, workdir, args, report)
        else:
            measure("SQLite" if first.startswith("sqlite") else "--db", first, moto.url, listing, workdir, args, report)

        if not args.no_pg and not (args.db or "").startswith("postgresql"):
            reason = h.pg_unavailable(args.pg_url)
            if reason:
                report.section(f"PostgreSQL: skipped ({reason})")
            else:
                with h.pg_schema(args.pg_url, "bench_rerun") as url:
                    measure("PostgreSQL", url, moto.url, listing, workdir, args, report)
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
