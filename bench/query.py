"""Search latency on a synthetic index of 1,000,000 faces (about 400,000 images).

    python bench/query.py                                   # SQLite, $TMPDIR/indexer-bench/query-1m.db
    python bench/query.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test   # own schema
    python bench/query.py --rebuild                         # throw the index away and build it again

The index is built once with bulk Core inserts (executemany on SQLite, COPY on PostgreSQL), not
through Store.write, and reused while it holds the right number of faces. Data are synthetic but
realistic in distribution, from a fixed seed: ~45% smiling, ~10% eyeglasses, ~3% sunglasses,
~15% beard (mostly men), 50/50 gender, ages 1-90, emotions skewed to CALM/HAPPY, 0-12 faces per
image skewed small, 5% of images by the ``local`` engine (no Gender/Age/Beard...: NULLs), and a
full Rekognition-sized raw FaceDetail (landmarks included) per face. The ``emotions`` table (all
scores per face) is not filled: search reads only the top emotion on ``faces``.

It prints p50/p95 of ten fixed queries with ``--count`` and with ``--limit 100``, and times the
whole ``indexer search QUERY --limit 100`` command as a process, start to exit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from indexer import bitsets  # noqa: E402
from indexer.store.models import faces_table, images_table  # noqa: E402
from indexer.store.repository import Store, utcnow  # noqa: E402

QUERIES = [
    "smiling",
    "women with glasses",
    "bearded men over 40",
    "sunglasses",
    "not smiling children",
    "happy women in their 30s",
    "kids in group photos",
    "portraits of men without beard",
    "angry men with mustache",
    "no faces",
]

SEED = 20261125
LOCAL_ATTRIBUTES = {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality", "Emotions", "Smile", "EyesOpen",
                    "MouthOpen", "EyeDirection"}
REKOGNITION_ATTRIBUTES = {"BoundingBox", "AgeRange", "Smile", "Eyeglasses", "Sunglasses", "Gender", "Beard", "Mustache",
                          "EyesOpen", "MouthOpen", "Emotions", "Landmarks", "Pose", "Quality", "Confidence",
                          "FaceOccluded", "EyeDirection"}
LANDMARK_TYPES = ["eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose", "leftEyeBrowLeft", "leftEyeBrowRight",
                  "leftEyeBrowUp", "rightEyeBrowLeft", "rightEyeBrowRight", "rightEyeBrowUp", "leftEyeLeft",
                  "leftEyeRight", "leftEyeUp", "leftEyeDown", "rightEyeLeft", "rightEyeRight", "rightEyeUp",
                  "rightEyeDown", "noseLeft", "noseRight", "mouthUp", "mouthDown", "leftPupil", "rightPupil",
                  "upperJawlineLeft", "midJawlineLeft", "chinBottom", "midJawlineRight", "upperJawlineRight"]
EMOTION_TYPES = ["HAPPY", "SAD", "ANGRY", "CONFUSED", "DISGUSTED", "SURPRISED", "CALM", "FEAR"]
# faces per image: 0..12, skewed small (mean ~2.5)
FACE_COUNT_WEIGHTS = [12, 30, 22, 13, 8, 5, 3, 2, 1.6, 1.2, 0.9, 0.7, 0.6]


def default_sqlite_url() -> str:
    folder = Path(tempfile.gettempdir()) / "indexer-bench"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'query-1m.db'}"


def pg_url_with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


# -- synthetic data ------------------------------------------------------------------------------


def _conf(rng: random.Random) -> float:
    """A boolean attribute's confidence: mostly very sure, a tail down to 50."""
    return round(max(50.0, min(99.99, 100.0 - abs(rng.gauss(0, 12)))), 4)


def synth_face(rng: random.Random, local: bool, landmarks: list[str]) -> tuple[dict, str]:
    """(typed columns, raw FaceDetail JSON) for one face."""
    male = rng.random() < 0.5
    if rng.random() < 0.15:
        age = rng.uniform(1, 90)
    else:
        age = max(1.0, min(90.0, rng.gauss(34, 17)))
    spread = 2 + age * rng.uniform(0.05, 0.15)
    low, high = max(0, int(age - spread)), int(age + spread) + 1
    smile = rng.random() < 0.45
    values = {
        "Smile": smile,
        "Eyeglasses": rng.random() < 0.10,
        "Sunglasses": rng.random() < 0.03,
        "Beard": rng.random() < (0.28 if male else 0.02) and age >= 16,
        "Mustache": rng.random() < (0.18 if male else 0.01) and age >= 16,
        "EyesOpen": rng.random() < 0.90,
        "MouthOpen": rng.random() < 0.25,
        "FaceOccluded": rng.random() < 0.05,
    }
    if smile:
        top = "HAPPY" if rng.random() < 0.6 else rng.choices(EMOTION_TYPES, [0, 5, 2, 5, 2, 8, 70, 2])[0]
    else:
        top = rng.choices(EMOTION_TYPES, [5, 16, 10, 13, 7, 10, 30, 9])[0]
    top_conf = round(rng.uniform(35, 99.5), 4)
    rest = 100.0 - top_conf
    emotions = [{"Type": top, "Confidence": top_conf}]
    others = [e for e in EMOTION_TYPES if e != top]
    shares = [rng.random() for _ in others]
    total = sum(shares)
    for kind, share in zip(others, shares):
        emotions.append({"Type": kind, "Confidence": round(min(rest * share / total, top_conf - 0.01), 4)})
    box = {"Width": round(rng.uniform(0.03, 0.5), 6), "Height": round(rng.uniform(0.05, 0.6), 6),
           "Left": round(rng.uniform(0, 0.8), 6), "Top": round(rng.uniform(0, 0.8), 6)}
    detail: dict = {
        "BoundingBox": box,
        "Confidence": round(rng.uniform(90, 99.999), 5),
        "Pose": {"Roll": round(rng.gauss(0, 8), 4), "Yaw": round(rng.gauss(0, 20), 4), "Pitch": round(rng.gauss(0, 10), 4)},
        "Quality": {"Brightness": round(rng.uniform(20, 95), 4), "Sharpness": round(rng.uniform(10, 98), 4)},
        "Emotions": emotions,
        "EyeDirection": {"Yaw": round(rng.gauss(0, 10), 4), "Pitch": round(rng.gauss(0, 8), 4),
                         "Confidence": round(rng.uniform(90, 99.9), 4)},
    }
    keys = LOCAL_ATTRIBUTES if local else REKOGNITION_ATTRIBUTES
    if "AgeRange" in keys:
        detail["AgeRange"] = {"Low": low, "High": high}
    if "Gender" in keys:
        detail["Gender"] = {"Value": "Male" if male else "Female", "Confidence": _conf(rng)}
    for key, value in values.items():
        if key in keys:
            detail[key] = {"Value": value, "Confidence": _conf(rng)}
    raw = json.dumps(detail, separators=(",", ":"))[:-1] + ',"Landmarks":' + rng.choice(landmarks) + "}"

    columns = {
        "bbox_left": box["Left"], "bbox_top": box["Top"], "bbox_width": box["Width"], "bbox_height": box["Height"],
        "confidence": detail["Confidence"],
        "age_low": low if "AgeRange" in keys else None,
        "age_high": high if "AgeRange" in keys else None,
        "age_mid": (low + high) / 2 if "AgeRange" in keys else None,
        "gender": detail["Gender"]["Value"] if "Gender" in keys else None,
        "gender_confidence": detail["Gender"]["Confidence"] if "Gender" in keys else None,
        "pose_roll": detail["Pose"]["Roll"], "pose_yaw": detail["Pose"]["Yaw"], "pose_pitch": detail["Pose"]["Pitch"],
        "quality_brightness": detail["Quality"]["Brightness"], "quality_sharpness": detail["Quality"]["Sharpness"],
        "eye_direction_yaw": detail["EyeDirection"]["Yaw"], "eye_direction_pitch": detail["EyeDirection"]["Pitch"],
        "eye_direction_confidence": detail["EyeDirection"]["Confidence"],
        "emotion": top, "emotion_confidence": top_conf, "raw": raw,
    }
    from indexer.attributes import BOOLEANS

    for boolean in BOOLEANS:
        attribute = detail.get(boolean.key)
        columns[boolean.column] = attribute["Value"] if attribute else None
        columns[f"{boolean.column}_confidence"] = attribute["Confidence"] if attribute else None
    return columns, raw


def _landmark_pool(rng: random.Random, n: int = 500) -> list[str]:
    return [
        json.dumps([{"Type": t, "X": round(rng.random(), 8), "Y": round(rng.random(), 8)} for t in LANDMARK_TYPES],
                   separators=(",", ":"))
        for _ in range(n)
    ]


def generate(n_faces: int, seed: int = SEED):
    """Yield (image row, [face column dicts]) until exactly ``n_faces`` faces were produced."""
    rng = random.Random(seed)
    landmarks = _landmark_pool(rng)
    produced = 0
    serial = 0
    while produced < n_faces:
        count = min(rng.choices(range(13), FACE_COUNT_WEIGHTS)[0], n_faces - produced)
        serial += 1
        local = rng.random() < 0.05
        # realistic keys: year/month folders, camera names; ids are NOT in URI order (shuffled by rng key)
        uri = (f"s3://photos-bench/{2010 + serial % 15}/{1 + (serial * 7) % 12:02d}/"
               f"{rng.choice(['IMG', 'DSC', 'PXL'])}_{rng.getrandbits(40):012x}.jpg")
        image = {"uri": uri, "fingerprint": f"{rng.getrandbits(128):032x}", "size": rng.randint(200_000, 9_000_000),
                 "width": 4032, "height": 3024, "engine": "local" if local else "rekognition", "status": "indexed",
                 "face_count": count}
        faces = [synth_face(rng, local, landmarks)[0] for _ in range(count)]
        produced += count
        yield image, faces


# -- building ------------------------------------------------------------------------------------


def _index_ddl(conn) -> list[tuple[str, str]]:
    """(name, CREATE INDEX sql) of the secondary indexes on images and faces (not PK/unique)."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name IN ('images','faces') AND sql IS NOT NULL"
        ).all()
    else:
        rows = conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename IN ('images','faces') AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE connamespace = current_schema()::regnamespace)"
        ).all()
    return [(name, sql) for name, sql in rows]


def build(store: Store, n_faces: int, batch: int = 20_000) -> None:
    engine = store.engine
    with engine.begin() as conn:
        ddl = _index_ddl(conn)
        for name, _sql in ddl:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        conn.execute(faces_table.delete())
        conn.execute(images_table.delete())
    store.record_engine("rekognition", REKOGNITION_ATTRIBUTES)
    store.record_engine("local", LOCAL_ATTRIBUTES)
    now = utcnow()
    started = time.perf_counter()
    face_cols = [c.name for c in faces_table.columns if c.name != "id"]
    image_id = 0
    images: list[dict] = []
    faces: list[dict] = []
    done = 0

    def flush(conn) -> None:
        nonlocal images, faces
        if not images:
            return
        if conn.dialect.name == "postgresql":
            raw = conn.connection.dbapi_connection
            with raw.cursor() as cur:
                image_cols = ["id", "uri", "fingerprint", "size", "width", "height", "engine", "status", "face_count",
                              "indexed_at"]
                with cur.copy(f"COPY images ({','.join(image_cols)}) FROM STDIN") as copy:
                    for row in images:
                        copy.write_row([row[c] for c in image_cols])
                with cur.copy(f"COPY faces ({','.join(face_cols)}) FROM STDIN") as copy:
                    for row in faces:
                        copy.write_row([row[c] for c in face_cols])
        else:
            conn.execute(insert(images_table), images)
            conn.execute(insert(faces_table), faces)
        images, faces = [], []

    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA cache_size=-1000000")
        for image, image_faces in generate(n_faces):
            image_id += 1
            image.update(id=image_id, indexed_at=now)
            images.append(image)
            for index, face in enumerate(image_faces):
                face.update(image_id=image_id, face_index=index, engine=image["engine"])
                faces.append(face)
            if len(faces) >= batch:
                done += len(faces)
                flush(conn)
                rate = done / (time.perf_counter() - started)
                print(f"\r  {done:,} faces ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
        done += len(faces)
        flush(conn)
        print(f"\r  {done:,} faces, {image_id:,} images in {time.perf_counter() - started:.0f}s; indexing...",
              file=sys.stderr, flush=True)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('images','id'), (SELECT max(id) FROM images))")
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('faces','id'), (SELECT max(id) FROM faces))")
        for _name, sql in ddl:
            conn.exec_driver_sql(sql)
    analyze(store)
    print(f"  built in {time.perf_counter() - started:.0f}s", file=sys.stderr)


def analyze(store: Store) -> None:
    """Planner statistics, as ``indexer`` leaves them after a run (PRAGMA optimize / autovacuum)."""
    if store.dialect == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE images")
            conn.exec_driver_sql("VACUUM ANALYZE faces")
    else:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def ensure_index(url: str, n_faces: int, rebuild: bool) -> Store:
    if rebuild and url.startswith("sqlite:///"):
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    store = Store.open(url)
    with store.engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(faces_table)).scalar_one()
    if rebuild or have != n_faces:
        print(f"building a synthetic index of {n_faces:,} faces in {store.engine.url.render_as_string()}",
              file=sys.stderr)
        build(store, n_faces)
    else:
        print(f"reusing {store.engine.url.render_as_string()} ({have:,} faces)", file=sys.stderr)
    started = time.perf_counter()
    if bitsets.refresh(store):  # as every `indexer index` run leaves them
        print(f"  face bitsets rebuilt in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return store


def open_bench_index(db: str | None, schema: str, n_faces: int, rebuild: bool) -> tuple[str, Store]:
    """(URL, open store) of the bench index, built first if missing (PostgreSQL: in ``schema``)."""
    url = db or default_sqlite_url()
    if url.startswith("postgres"):
        from sqlalchemy import create_engine

        admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1) if "+" not in url.split("://")[0] else url)
        with admin.begin() as conn:
            if rebuild:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        admin.dispose()
        url = pg_url_with_schema(url, schema)
    return url, ensure_index(url, n_faces, rebuild)


# -- timing --------------------------------------------------------------------------------------


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def time_queries(store: Store, repeat: int) -> list[dict]:
    from indexer.query import parse
    from indexer.search import count, search

    results = []
    for text_query in QUERIES:
        query = parse(text_query)
        row = {"query": text_query}
        for mode in ("count", "limit100"):
            samples = []
            for i in range(repeat + 1):
                t0 = time.perf_counter()
                if mode == "count":
                    value = count(store, query)
                else:
                    value = len(search(store, query, limit=100))
                elapsed = time.perf_counter() - t0
                if i:  # the first run warms the cache
                    samples.append(elapsed)
            row[mode] = (percentile(samples, 0.5), percentile(samples, 0.95), value)
        results.append(row)
    return results


STAND_IN = """
import sys
from indexer.output import format_matches
from indexer.query import parse
from indexer.search import capability_warnings, search
from indexer.store.repository import Store
query = parse(sys.argv[1])
store = Store.open(sys.argv[2])
for warning in capability_warnings(store, query):
    print(warning, file=sys.stderr)
format_matches(search(store, query, limit=100, with_faces=False), "uris", sys.stdout)
"""


def cli_available() -> bool:
    probe = subprocess.run([sys.executable, "-m", "indexer", "search", "--help"], capture_output=True, text=True)
    return probe.returncode == 0


def time_process(url: str, repeat: int) -> tuple[str, list[tuple[str, float, float, int]]]:
    use_cli = cli_available()
    rows = []
    for text_query in QUERIES:
        if use_cli:
            cmd = [sys.executable, "-m", "indexer", "search", text_query, "--db", url, "--limit", "100", "--format", "uris"]
        else:
            cmd = [sys.executable, "-c", STAND_IN, text_query, url]
        samples = []
        lines = 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
            samples.append(time.perf_counter() - t0)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(cmd[:4])}... failed ({done.returncode}): {done.stderr.strip()[-400:]}")
            lines = len(done.stdout.splitlines())
        rows.append((text_query, percentile(samples, 0.5), max(samples), lines))
    how = "python -m indexer search QUERY --db URL --limit 100 --format uris" if use_cli else (
        "STAND-IN (no `indexer search` CLI yet): python -c '<parse; Store.open(url); capability_warnings; "
        "search(limit=100); format_matches(..., \"uris\")>'"
    )
    return how, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="database URL (default: SQLite file under $TMPDIR/indexer-bench)")
    parser.add_argument("--schema", default="bench_query", help="PostgreSQL schema for the bench index")
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true", help="build the index again even if it exists")
    parser.add_argument("--repeat", type=int, default=11, help="timed runs per query and mode (after one warm-up)")
    parser.add_argument("--process-repeat", type=int, default=3, help="runs of the whole command per query")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--no-process", action="store_true", help="skip timing the command as a process")
    args = parser.parse_args()

    url, store = open_bench_index(args.db, args.schema, args.faces, args.rebuild)
    if args.build_only:
        return
    with store.engine.connect() as conn:
        n_images = conn.execute(select(func.count()).select_from(images_table)).scalar_one()
        n_faces = conn.execute(select(func.count()).select_from(faces_table)).scalar_one()
    print(f"index: {store.dialect}, {n_images:,} images, {n_faces:,} faces; {os.cpu_count()} CPUs; "
          f"{args.repeat} timed runs per query after one warm-up")
    print(f"{'query':34} {'--count p50/p95 ms':>20} {'images/faces':>16} {'--limit 100 p50/p95 ms':>24} {'rows':>5}")
    worst = 0.0
    for row in time_queries(store, args.repeat):
        c50, c95, (ni, nf) = row["count"]
        l50, l95, rows = row["limit100"]
        worst = max(worst, c50, l50)
        print(f"{row['query']:34} {c50 * 1000:9.1f} /{c95 * 1000:7.1f} {ni:>8,}/{nf:<9,} "
              f"{l50 * 1000:13.1f} /{l95 * 1000:7.1f} {rows:5d}")
    print(f"worst p50: {worst * 1000:.1f} ms")
    store.close()
    if not args.no_process:
        how, rows = time_process(url, args.process_repeat)
        print(f"whole command, start to exit ({args.process_repeat} runs each): {how}")
        for text_query, p50, worst_run, lines in rows:
            print(f"  {text_query:34} p50 {p50:.3f} s  max {worst_run:.3f} s  ({lines} URIs)")


if __name__ == "__main__":
    main()
