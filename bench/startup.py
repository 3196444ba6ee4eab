"""Start-up time of ``indexer search``: the whole process against the floor of its two libraries.

    python bench/startup.py                                   # the 1M-face index bench/query.py builds
    python bench/startup.py --db /path/to/index.db --runs 21  # a path or a database URL
    python bench/startup.py --instructions                    # also count instructions (valgrind)

The floor is ``python -c "import sqlalchemy, typer"``: a process that does nothing but import the
two libraries every command needs. The measured command is ``python -m indexer search smiling
--limit 100 --db URL`` (default format, output read through a pipe), start to exit. The two are
run alternately, so that a noisy machine slows both alike, and the p50 of each is compared; the
target is a ratio of at most 1.25. The children may write bytecode caches whatever this process
was told (PYTHONDONTWRITEBYTECODE): an installed indexer runs from its .pyc files like the two
libraries do, and compiling our sources on every run is not what a user waits for.

Wall time on a shared two-core VM swings by 10% between runs; ``--instructions`` also counts the
instructions each process executes under valgrind's callgrind, which repeat within 0.3%: the
steadier figure to compare two versions of the code by (it weighs a cache miss like an add).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = Path(tempfile.gettempdir()) / "indexer-bench" / "query-1m.db"
TARGET_RATIO = 1.25

FLOOR = [sys.executable, "-c", "import sqlalchemy, typer"]
CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def search_command(db_url: str) -> list[str]:
    return [sys.executable, "-m", "indexer", "search", "smiling", "--limit", "100", "--db", db_url]


def as_url(db: str) -> str:
    """A database URL as given, or a file path as a SQLite URL."""
    return db if "://" in db else f"sqlite:///{Path(db).resolve()}"


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as the benchmark's children run; a failure ends the benchmark with its stderr."""
    done = subprocess.run(command, capture_output=True, text=True, cwd=str(ROOT), env=CHILD_ENV)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])}... failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return done


def timed(command: list[str]) -> float:
    """Seconds from start to exit of ``command``."""
    started = time.perf_counter()
    run(command)
    return time.perf_counter() - started


def instructions(command: list[str]) -> int:
    """Instructions ``command`` executes from start to exit, counted by callgrind."""
    done = run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command])
    counted = re.search(r"Collected : (\d+)", done.stderr)
    if counted is None:
        raise SystemExit(f"valgrind printed no instruction count: {done.stderr.strip()[-400:]}")
    return int(counted.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=str(DEFAULT_DB), help=f"index to search: a path or a URL (default {DEFAULT_DB})")
    parser.add_argument("--runs", type=int, default=15, help="runs of each process (interleaved)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions under valgrind (about a minute)")
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind on PATH")
    db_url = as_url(args.db)
    if db_url.startswith("sqlite:///") and not Path(db_url.removeprefix("sqlite:///")).exists():
        raise SystemExit(f"no index at {args.db}: build it with `python bench/query.py --build-only`")

    command = search_command(db_url)
    timed(FLOOR), timed(command)  # warm the page cache, write the bytecode caches
    floor: list[float] = []
    search: list[float] = []
    for _ in range(args.runs):
        floor.append(timed(FLOOR))
        search.append(timed(command))

    floor_p50, search_p50 = statistics.median(floor), statistics.median(search)
    ratio = search_p50 / floor_p50
    print(f"floor   python -c 'import sqlalchemy, typer'        p50 {floor_p50:.3f} s  (min {min(floor):.3f})")
    print(f"search  indexer search smiling --limit 100 --db ..  p50 {search_p50:.3f} s  (min {min(search):.3f})")
    print(f"ratio   {ratio:.2f}  (target <= {TARGET_RATIO}: {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}; {args.runs} interleaved runs each)")
    if args.instructions:
        floor_n, search_n = instructions(FLOOR), instructions(command)
        print(f"instructions  floor {floor_n / 1e6:.1f}M  search {search_n / 1e6:.1f}M  ratio {search_n / floor_n:.3f}")


if __name__ == "__main__":
    main()
