#!/usr/bin/env python
"""Sharded runs (issue 13): N copies of ``indexer index --shard i/N`` at once, against one process.

    python bench/shards.py                         # both parts, 4 shards
    python bench/shards.py --skip-local            # the Rekognition part only
    python bench/shards.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test

1. The offline engine (``--engine local``) over a folder of public photos, read in place
   (default /work/shared/data/celeba_attributes/images): one process, then ``--shards`` processes
   ``--shard i/N`` started at once into one fresh database. Figures: images/s of each (images
   analysed / wall time from the first start to the last exit, and over the longest run's own
   ``elapsed_s``, without interpreter start-up). On two cores expect ~2x at best:
   the engine is CPU-bound, and one process already uses a pool of workers.
2. Rekognition: a moto S3 server (its own process) holding ``--images`` distinct JPEGs and the
   tests' Rekognition endpoint admitting ``--admit`` calls per second (the excess refused with
   ProvisionedThroughputExceededException). One process with ``--tps`` (the total), then N shards
   each given the same ``--tps`` (each starts at tps/N). Figures: combined images/s, calls,
   refused (throttled) calls, and images lost.

Each measured database is PostgreSQL when ``--db`` names one (a fresh schema each), else a SQLite
file (N writers then share one file: fine at these rates). Always exits 0: these are measurements.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

BUCKET = "bench-shards"
PREFIX = "photos/"
REFUSED = "ProvisionedThroughputExceededException"
DEFAULT_PHOTOS = "/work/shared/data/celeba_attributes/images"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=4, help="copies run at once (default 4)")
    parser.add_argument("--photos", default=DEFAULT_PHOTOS, help=f"folder for the offline engine (default {DEFAULT_PHOTOS})")
    parser.add_argument("--images", type=int, default=1000, help="images in the S3 bucket (default 1000)")
    parser.add_argument("--tps", type=float, default=50.0, help="--tps, the total (default 50)")
    parser.add_argument("--admit", type=float, default=50.0, help="calls the endpoint admits per second (default 50)")
    parser.add_argument("--latency", type=float, default=0.1, help="endpoint latency, s (default 0.1)")
    parser.add_argument("--shard-workers", type=int, default=None, help="INDEXER_WORKERS of each shard's offline engine (default: the engine's own, one per core)")
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--skip-local", action="store_true", help="skip the offline-engine part")
    parser.add_argument("--skip-rekognition", action="store_true", help="skip the Rekognition part")
    return parser.parse_args(argv)


def fresh_db(args: argparse.Namespace, workdir: Path, name: str) -> tuple[str, Callable[[], None]]:
    """A new, empty database URL and how to drop it."""
    if args.db and args.db.startswith("postgresql"):
        context = h.pg_schema(args.db, f"bench_sh_{name}")
        url = context.__enter__()
        return url, lambda: context.__exit__(None, None, None)
    return f"sqlite:///{workdir / f'{name}.db'}", lambda: None


def migrate(db_url: str) -> None:
    """Create the schema before N processes start (none of them then migrates)."""
    from indexer.store.repository import Store

    Store.open(db_url).close()


def run_at_once(commands: list[list[str]], env: dict[str, str], timeout: float) -> tuple[list[dict[str, Any]], float]:
    """Start every ``indexer`` command at once; their results and the wall time until the last exits."""
    results: list[dict[str, Any]] = [{} for _ in commands]

    def one(i: int) -> None:
        results[i] = h.run_cli(commands[i], env, timeout)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(commands))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.monotonic() - started


def analysed(results: list[dict[str, Any]]) -> int:
    return sum(int(r["summary"].get("analyzed", 0)) for r in results)


def run_seconds(results: list[dict[str, Any]]) -> float:
    """The longest run's own ``elapsed_s`` (from its lease to its summary: no interpreter start-up)."""
    return max(float(r["summary"].get("elapsed_s", 0.0)) for r in results)


def check(results: list[dict[str, Any]]) -> None:
    for result in results:
        if result["returncode"] != 0 or result["timed_out"]:
            h.log(f"  a run failed (exit {result['returncode']}): {result['stderr'][-500:]}")


def sharded(base: list[str], n: int) -> list[list[str]]:
    return [[*base, "--shard", f"{i}/{n}"] for i in range(n)]


def bench_local(args: argparse.Namespace, workdir: Path, report: h.Report) -> None:
    photos = Path(args.photos)
    count = sum(1 for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    report.section(f"offline engine: {count} photos in {photos}")
    env = h.aws_env("http://127.0.0.1:9", None, workdir)
    rates = {}
    for label, n in (("1 process", 1), (f"{args.shards} shards", args.shards)):
        db_url, drop = fresh_db(args, workdir, f"local{n}")
        try:
            migrate(db_url)
            base = ["index", str(photos), "--engine", "local", "--db", db_url, "--json", "--quiet"]
            h.log(f"offline engine, {label}")
            run_env = env if n == 1 or args.shard_workers is None else {**env, "INDEXER_WORKERS": str(args.shard_workers)}
            results, wall = run_at_once([base] if n == 1 else sharded(base, n), run_env, timeout=3600)
            check(results)
            done = analysed(results)
            rates[n] = done / wall if wall else 0.0
            report.add(f"{label}: images analysed", done)
            report.add(f"{label}: wall s", wall, "{:.1f}")
            report.add(f"{label}: images/s", rates[n], "{:.2f}")
            report.add(f"{label}: images/s, runs' own time", done / max(run_seconds(results), 1e-9), "{:.2f}")
        finally:
            drop()
    if rates.get(1):
        report.add(f"{args.shards} shards / 1 process", rates[args.shards] / rates[1], "{:.2f}x", "~2x at best on 2 cores")


def bench_rekognition(args: argparse.Namespace, workdir: Path, report: h.Report) -> None:
    from tests.support.faces import face_detail
    from tests.support.images import jpeg_bytes

    images = [(f"{PREFIX}img-{i:05d}.jpg", jpeg_bytes(777_000 + i), [face_detail() for _ in range(i % 3)]) for i in range(args.images)]
    report.section(
        f"rekognition: {args.images} images; endpoint admits {args.admit:g}/s, {args.latency * 1000:.0f} ms; --tps {args.tps:g} total"
    )
    with h.MotoS3() as moto:
        h.s3_client(moto.url).create_bucket(Bucket=BUCKET)
        h.put_objects(moto.url, BUCKET, [(key, body) for key, body, _ in images], threads=16)
        registry = [(body, faces) for _, body, faces in images]
        for label, n in (("1 process", 1), (f"{args.shards} shards", args.shards)):
            db_url, drop = fresh_db(args, workdir, f"rek{n}")
            try:
                migrate(db_url)
                with h.fake_rekognition(moto.url, latency=args.latency, admit_per_second=args.admit, faces=registry) as fake:
                    env = h.aws_env(moto.url, fake.url, workdir)
                    base = ["index", f"s3://{BUCKET}/{PREFIX}", "--db", db_url, "--tps", f"{args.tps:g}", "--json", "--quiet"]
                    h.log(f"rekognition, {label}")
                    results, wall = run_at_once([base] if n == 1 else sharded(base, n), env, timeout=max(120.0, 6 * args.images / args.admit))
                    check(results)
                    done = analysed(results)
                    calls, refused = fake.count(), fake.count(REFUSED)
                report.add(f"{label}: images/s", done / wall if wall else 0.0, "{:.1f}", f"<= {args.admit:g}")
                report.add(f"{label}: images/s, runs' own time", done / max(run_seconds(results), 1e-9), "{:.1f}", f"<= {args.admit:g}")
                report.add(f"{label}: images analysed (lost)", f"{done} ({args.images - done})")
                report.add(f"{label}: calls / throttled", f"{calls} / {refused} ({refused / max(calls, 1):.1%})")
            finally:
                drop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = h.Report(f"bench/shards.py: {args.shards} shards against one process")
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        workdir = Path(tmp)
        if not args.skip_local:
            bench_local(args, workdir, report)
        if not args.skip_rekognition:
            bench_rekognition(args, workdir, report)
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
