#!/usr/bin/env python
"""Indexing throughput against a rate-limited, faulty Rekognition, vs a plain boto3 script.

    python bench/throughput.py                      # 2,000 images (the issue's setup)
    python bench/throughput.py --images 300         # a quick smoke run
    python bench/throughput.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test

Sets up a local S3 (moto server, its own process) holding ``--images`` small distinct JPEGs and a
local Rekognition JSON endpoint (tests/support/rekognition_endpoint.py) with 100 ms latency that
admits at most 50 calls per second (the excess gets ProvisionedThroughputExceededException) and
fails 2% of calls with ThrottlingException or InternalServerError (50/50). Then:

1. ``indexer index s3://... --tps 200 --concurrency 16 --json --quiet`` as a child process
   (``--tps 200`` is deliberately four times too high: the adaptive limiter must find the rate);
   the database is then checked: every image must be there, indexed, with its faces.
2. A plain script, also a child process: ``ThreadPoolExecutor(32)`` + a boto3 client in
   botocore's ``adaptive`` retry mode (max_attempts 10, 32 pooled connections); each worker calls
   detect_faces with the S3Object and counts success/failure. No store. Against a fresh endpoint
   with the same behaviour.

Figures: images/s (images indexed / the run's own elapsed_s; the plain script's from its first
call to its last answer), calls made and refused as the endpoint counted them, images lost, and
the ratio of the two rates. Targets (issue): >= 45 images/s, zero lost, calls <= 1.10 x images,
>= 1.8x the plain script. Always exits 0: these are measurements.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

BUCKET = "bench-throughput"
PREFIX = "photos/"
REFUSED = "ProvisionedThroughputExceededException"
FAULTS = ("ThrottlingException", "InternalServerError")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="images in the bucket (default 2000)")
    parser.add_argument("--db", default=None, help="database URL for the indexer (default: SQLite in a temp dir)")
    parser.add_argument("--tps", type=float, default=200.0, help="indexer --tps (default 200, deliberately too high)")
    parser.add_argument("--concurrency", type=int, default=16, help="indexer --concurrency (default 16)")
    parser.add_argument("--latency", type=float, default=0.1, help="endpoint latency, s (default 0.1)")
    parser.add_argument("--admit", type=float, default=50.0, help="calls admitted per second (default 50)")
    parser.add_argument("--fault-rate", type=float, default=0.02, help="random fault share (default 0.02)")
    parser.add_argument("--plain-workers", type=int, default=32, help="plain script's threads (default 32)")
    parser.add_argument("--skip-plain", action="store_true", help="measure the indexer only")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeline", action="store_true", help="also print calls per second (ok/refused/faults)")
    parser.add_argument("--plain-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keys-file", help=argparse.SUPPRESS)
    parser.add_argument("--deadline-s", type=float, default=300.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# -- the plain script (runs as a child process, so its CPU is its own) ------------------------


def plain_child(args: argparse.Namespace) -> None:
    import boto3
    from botocore.config import Config

    keys = json.loads(Path(args.keys_file).read_text())
    client = boto3.client(
        "rekognition",
        config=Config(retries={"mode": "adaptive", "max_attempts": 10}, max_pool_connections=args.plain_workers),
    )
    counts = {"ok": 0, "failed": 0, "not_attempted": 0}
    errors: dict[str, int] = {}
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + args.deadline_s

    def one(key: str) -> None:
        if time.monotonic() > deadline:
            outcome = "not_attempted"
        else:
            try:
                client.detect_faces(Image={"S3Object": {"Bucket": BUCKET, "Name": key}}, Attributes=["ALL"])
                outcome = "ok"
            except Exception as exc:  # noqa: BLE001 - counted, as a plain script would
                outcome = "failed"
                code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
                with lock:
                    errors[code] = errors.get(code, 0) + 1
        with lock:
            counts[outcome] += 1

    with ThreadPoolExecutor(args.plain_workers) as pool:
        list(pool.map(one, keys))
    print(json.dumps({**counts, "errors": errors, "elapsed_s": time.monotonic() - started}))


def run_plain(keys: list[str], env: dict, workdir: Path, workers: int, deadline_s: float) -> dict:
    import subprocess

    keys_file = workdir / "plain-keys.json"
    keys_file.write_text(json.dumps(keys))
    command = [sys.executable, str(Path(__file__).resolve()), "--plain-child", "--keys-file", str(keys_file),
               "--plain-workers", str(workers), "--deadline-s", str(deadline_s)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=deadline_s + 120)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": (done.stderr or done.stdout)[-1500:]}


# -- set-up -------------------------------------------------------------------------------------


def make_images(n: int, seed: int) -> list[tuple[str, bytes, list]]:
    """(key, jpeg bytes, FaceDetails) for ``n`` distinct images with 0-3 faces each."""
    from tests.support.faces import face_detail
    from tests.support.images import jpeg_bytes

    out = []
    for i in range(n):
        n_faces = i % 4
        faces = [
            face_detail(smile=bool((i + j) % 2), eyeglasses=(j == 1), box=(0.1 + 0.2 * j, 0.2, 0.15, 0.2))
            for j in range(n_faces)
        ]
        out.append((f"{PREFIX}{i // 500:02d}/img-{i:05d}.jpg", jpeg_bytes(seed * 1_000_003 + i), faces))
    return out


def check_db(db_url: str, n_images: int) -> dict:
    from sqlalchemy import func, select

    from indexer.store.models import faces_table, images_table
    from indexer.store.repository import Store

    store = Store.open(db_url, migrate=False)
    try:
        with store.engine.connect() as conn:
            under = images_table.c.uri.startswith(f"s3://{BUCKET}/{PREFIX}")
            indexed = conn.execute(
                select(func.count()).select_from(images_table).where(under, images_table.c.status == "indexed", images_table.c.engine == "rekognition")
            ).scalar_one()
            failed = conn.execute(select(func.count()).select_from(images_table).where(under, images_table.c.status != "indexed")).scalar_one()
            faces = conn.execute(select(func.count()).select_from(faces_table)).scalar_one()
    finally:
        store.close()
    return {"indexed": indexed, "failed_rows": failed, "faces": faces, "lost": n_images - indexed}


# -- the benchmark ----------------------------------------------------------------------------


def endpoint_counts(fake) -> dict:
    calls = fake.count()
    refused = fake.count(REFUSED)
    faults = sum(fake.count(code) for code in FAULTS)
    return {"calls": calls, "ok": fake.count("ok"), "refused": refused, "faults": faults}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.plain_child:
        plain_child(args)
        return 0
    behaviour = dict(latency=args.latency, admit_per_second=args.admit, fault_rate=args.fault_rate)
    report = h.Report(
        f"bench/throughput.py: {args.images:,} images; endpoint {args.latency * 1000:.0f} ms, admits {args.admit:g}/s, "
        f"{args.fault_rate:.0%} faults; indexer --tps {args.tps:g} --concurrency {args.concurrency}; "
        f"plain: {args.plain_workers} threads + botocore adaptive"
    )
    images = make_images(args.images, args.seed)
    registry = [(body, faces) for _, body, faces in images]
    expected_faces = sum(len(faces) for _, _, faces in images)
    bound = max(90.0, 4.0 * args.images / args.admit + 60.0)  # time bound of each measured run

    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp, h.MotoS3() as moto:
        workdir = Path(tmp)
        db_url = args.db or f"sqlite:///{workdir / 'index.db'}"
        pg_ctx = h.pg_schema(args.db, "bench_tp") if args.db and args.db.startswith("postgresql") else None
        if pg_ctx is not None:
            db_url = pg_ctx.__enter__()
        try:
            h.log(f"moto S3 at {moto.url}; uploading {args.images:,} images")
            h.s3_client(moto.url).create_bucket(Bucket=BUCKET)
            put_s = h.put_objects(moto.url, BUCKET, [(key, body) for key, body, _ in images], threads=16, every=1000)
            h.log(f"  uploaded in {put_s:.1f}s")

            # 1. the indexer
            with h.fake_rekognition(moto.url, seed=args.seed, faces=registry, **behaviour) as fake:
                env = h.aws_env(moto.url, fake.url, workdir)
                h.log(f"indexer: index s3://{BUCKET}/{PREFIX} --tps {args.tps:g} (bound {bound:.0f}s)")
                run = h.run_cli(
                    ["index", f"s3://{BUCKET}/{PREFIX}", "--db", db_url, "--tps", str(args.tps),
                     "--concurrency", str(args.concurrency), "--json", "--quiet"],
                    env, timeout=bound,
                )
                ix_calls = endpoint_counts(fake)
                ix_timeline = h.timeline_table(fake.timeline, REFUSED, FAULTS)
            summary = run["summary"]
            if run["returncode"] != 0 or not summary:
                h.log(f"indexer exited {run['returncode']}: {run['stderr']}")
            db = check_db(db_url, args.images)
            elapsed = summary.get("elapsed_s") or run["wall_s"]
            ix_rate = db["indexed"] / elapsed if elapsed else 0.0
            h.log(f"  {json.dumps(summary)}")

            # 2. the plain script, on a fresh endpoint with the same behaviour
            plain, pl_calls = {}, {}
            if not args.skip_plain:
                with h.fake_rekognition(moto.url, seed=args.seed + 1, faces=registry, **behaviour) as fake:
                    env = h.aws_env(moto.url, fake.url, workdir)
                    h.log(f"plain: ThreadPoolExecutor({args.plain_workers}) + adaptive retries (bound {bound:.0f}s)")
                    plain = run_plain([key for key, _, _ in images], env, workdir, args.plain_workers, bound)
                    pl_calls = endpoint_counts(fake)
                    pl_timeline = h.timeline_table(fake.timeline, REFUSED, FAULTS)
                h.log(f"  {json.dumps(plain)}")
        finally:
            if pg_ctx is not None:
                pg_ctx.__exit__(None, None, None)

    if args.timeline:
        print("indexer, calls per second at the endpoint:\n" + ix_timeline)
        if not args.skip_plain:
            print("plain script, calls per second at the endpoint:\n" + pl_timeline)
    # -- the table
    n = args.images
    report.section("indexer index (child process)")
    report.add("exit status / run status", f"{run['returncode']} / {summary.get('status', '?')}"
               + (" (TIMED OUT)" if run["timed_out"] else ""))
    report.add("elapsed (run's elapsed_s)", elapsed, "{:.1f} s")
    report.add("wall time of the process", run["wall_s"], "{:.1f} s")
    report.add("images/s", ix_rate, "{:.1f}", f">= {0.9 * args.admit:g}", ix_rate >= 0.9 * args.admit)
    report.add("images indexed (DB)", db["indexed"], "{:,}", f"= {n:,}")
    report.add("images lost (not indexed in DB)", db["lost"], "{:,}", "0", db["lost"] == 0)
    report.add("  of which rows with status failed", db["failed_rows"], "{:,}")
    report.add("faces in DB / expected", f"{db['faces']:,} / {expected_faces:,}", "{}", "equal", db["faces"] == expected_faces)
    report.add("calls made (endpoint count)", ix_calls["calls"], "{:,}")
    report.add("calls/image", ix_calls["calls"] / n, "{:.3f}", "<= 1.10", ix_calls["calls"] <= 1.10 * n)
    report.add("calls refused (over the 50/s ceiling)", ix_calls["refused"], "{:,}")
    report.add("calls faulted (Throttling/InternalServerError)", ix_calls["faults"], "{:,}")
    report.add("api_calls (indexer's own count)", summary.get("api_calls"), "{:,}")
    if not args.skip_plain:
        ok = plain.get("ok", 0)
        pl_elapsed = plain.get("elapsed_s") or 0.0
        pl_rate = ok / pl_elapsed if pl_elapsed else 0.0
        report.section(f"plain ThreadPoolExecutor({args.plain_workers}) + botocore adaptive (child process)")
        if "error" in plain:
            report.add("error", plain["error"][:100])
        report.add("elapsed", pl_elapsed, "{:.1f} s")
        report.add("images/s (succeeded)", pl_rate, "{:.1f}")
        report.add("images succeeded", ok, "{:,}")
        report.add("images lost (failed + not attempted)", n - ok, "{:,}")
        report.add("  final errors", ", ".join(f"{k} {v}" for k, v in sorted(plain.get("errors", {}).items())) or "none")
        report.add("calls made (endpoint count)", pl_calls.get("calls"), "{:,}")
        report.add("calls/image", (pl_calls.get("calls") or 0) / n, "{:.3f}")
        report.add("calls refused (over the 50/s ceiling)", pl_calls.get("refused"), "{:,}")
        report.add("calls faulted (Throttling/InternalServerError)", pl_calls.get("faults"), "{:,}")
        ratio = ix_rate / pl_rate if pl_rate else float("inf")
        report.section("comparison")
        report.add("indexer images/s / plain images/s", ratio, "{:.2f}x", ">= 1.8x", ratio >= 1.8)
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
