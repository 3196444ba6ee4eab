"""SQL latency of a broad generated query set on the 1M-face bench index, not only bench/query.py's ten.

    python bench/query_broad.py                       # SQLite, the index bench/query.py builds
    python bench/query_broad.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/query_broad.py --combinations 40 --repeat 1   # a quicker look

The queries are text, from fixed word lists and a fixed seed, so every one goes through the parser
as a typed query would: every searchable attribute (each yes/no attribute both ways, gender, every
emotion and its negation, age words, ranges, comparisons and decades, negated too), the image
terms (portraits, group photos, N faces, no faces, ranges, negated), each alone, and random
combinations of 2-4 of them. Each query is timed in three modes through the API the CLI uses:
``--count`` (search.count), ``--limit 100`` (search.search, URI order) and ``--limit 100 --order
confidence``. It prints the slowest queries of each mode, the worst p50 and how many p50s exceed
the budget (150 ms at 1M faces).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import open_bench_index, percentile  # noqa: E402  (bench/query.py)

BUDGET_MS = 150.0
SEED = 20261129

BOOLEAN_TERMS = [
    "smiling", "not smiling", "glasses", "no glasses", "eyeglasses", "no eyeglasses", "sunglasses", "no sunglasses",
    "beard", "no beard", "mustache", "no mustache", "clean-shaven", "eyes open", "eyes closed", "mouth open",
    "mouth closed", "occluded", "not occluded",
]
GENDER_TERMS = ["men", "women", "not men", "gender:female"]
EMOTION_WORDS = ["happy", "sad", "angry", "confused", "disgusted", "surprised", "calm", "afraid"]
EMOTION_TERMS = EMOTION_WORDS + [f"not {word}" for word in EMOTION_WORDS]
AGE_TERMS = [
    "children", "teenagers", "adults", "seniors", "not children", "not seniors", "over 40", "under 30",
    "at least 65", "at most 10", "older than 80", "aged 20-30", "between 30 and 50", "not over 40", "age>=70",
    "age<5", "40 years old", "in their 20s", "in their 30s", "in their 60s", "not in their 30s", "twenties",
    "fifties", "age:18-25", "not aged 20-60",
]
IMAGE_TERMS = [
    "portraits", "group photos", "2 faces", "no faces", "3 or more faces", "at least 5 faces", "faces:2-4",
    "not portraits", "not group photos", "12 faces", "faces>10", "at most 2 faces", "1-2 faces",
]
FACE_TERMS = BOOLEAN_TERMS + GENDER_TERMS + EMOTION_TERMS + AGE_TERMS


def generate_queries(n_combinations: int, seed: int = SEED) -> list[str]:
    """Every term alone, then ``n_combinations`` distinct random conjunctions of 2-4 terms
    (at most one image term each, so most of them can match)."""
    rng = random.Random(seed)
    queries = FACE_TERMS + IMAGE_TERMS
    seen = set(queries)
    while len(queries) < len(FACE_TERMS) + len(IMAGE_TERMS) + n_combinations:
        size = rng.randint(2, 4)
        if rng.random() < 0.4:
            terms = [*rng.sample(FACE_TERMS, size - 1), rng.choice(IMAGE_TERMS)]
        else:
            terms = rng.sample(FACE_TERMS, size)
        text = " ".join(terms)
        if text not in seen:
            seen.add(text)
            queries.append(text)
    return queries


def modes() -> dict[str, Callable[[Any, Any], Any]]:
    from indexer.search import count, search

    return {
        "count": lambda store, query: count(store, query),
        "limit100": lambda store, query: len(search(store, query, limit=100)),
        "limit100-confidence": lambda store, query: len(search(store, query, limit=100, order="confidence")),
    }


def time_query(store: Any, run: Callable[[Any, Any], Any], query: Any, repeat: int) -> float:
    """p50 in ms of ``repeat`` runs after one warm-up."""
    run(store, query)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run(store, query)
        samples.append(time.perf_counter() - started)
    return percentile(samples, 0.5) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="database URL (default: bench/query.py's SQLite file)")
    parser.add_argument("--schema", default="bench_query", help="PostgreSQL schema of the bench index")
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--combinations", type=int, default=150, help="random conjunctions of 2-4 terms")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per query and mode (after one warm-up)")
    parser.add_argument("--show", type=int, default=8, help="slowest queries printed per mode")
    parser.add_argument("--match", help="only the queries containing this text")
    parser.add_argument("--mode", action="append", choices=["count", "limit100", "limit100-confidence"],
                        help="time only this mode (repeatable; default: all three)")
    args = parser.parse_args()

    from indexer.errors import QueryError
    from indexer.query import parse

    _url, store = open_bench_index(args.db, args.schema, args.faces, rebuild=False)
    queries = generate_queries(args.combinations)
    if args.match:
        queries = [text for text in queries if args.match in text]
    parsed = []
    for text in queries:
        try:
            parsed.append((text, parse(text)))
        except QueryError as error:
            print(f"  skipped {text!r}: {error}", file=sys.stderr)
    print(f"{len(parsed)} queries ({len(FACE_TERMS) + len(IMAGE_TERMS)} single terms, the rest 2-4 terms), "
          f"{store.dialect}, p50 of {args.repeat} runs after a warm-up, budget {BUDGET_MS:.0f} ms")
    results: dict[str, list[tuple[float, str]]] = {}
    for mode, run in modes().items():
        if args.mode and mode not in args.mode:
            continue
        started = time.perf_counter()
        results[mode] = sorted(((time_query(store, run, query, args.repeat), text) for text, query in parsed),
                               reverse=True)
        print(f"  {mode}: timed in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    store.close()
    for mode, rows in results.items():
        over = sum(1 for p50, _text in rows if p50 >= BUDGET_MS)
        print(f"\n{mode}: worst p50 {rows[0][0]:.1f} ms, median {rows[len(rows) // 2][0]:.1f} ms, "
              f"{over} over {BUDGET_MS:.0f} ms")
        for p50, text in rows[: args.show]:
            print(f"  {p50:8.1f} ms  {text}")
    worst = max((rows[0] for rows in results.values()), key=lambda row: row[0])
    total_over = sum(1 for rows in results.values() for p50, _text in rows if p50 >= BUDGET_MS)
    print(f"\noverall worst p50: {worst[0]:.1f} ms ({worst[1]!r}); {total_over} of {len(parsed) * len(results)} "
          f"query/mode p50s over {BUDGET_MS:.0f} ms")


if __name__ == "__main__":
    main()
