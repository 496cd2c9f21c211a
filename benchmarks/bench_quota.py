"""Benchmark: the per-platform daily quota row on PostgreSQL under concurrent evaluate batches.

What is measured
----------------
Every evaluate request reserves its elements in one transaction (service/matching.py):
``quotas.reserve`` (a conditional ``UPDATE`` of the platform's row for today) and the
``INSERT`` of the batch's blinded elements (32 bytes each, kept for a later proof), then
a durable commit. The row lock taken by the ``UPDATE`` is held until that commit, so the
batches of one platform serialise on its row whatever the number of service instances.

This benchmark runs exactly that transaction, with the service's own functions, from 1, 2
and 4 concurrent writer processes against a throwaway PostgreSQL cluster (as the tests
start it, or ``BLINDMATCH_TEST_POSTGRES_URL``), at batch sizes of 128, 1024, 4096
(the default ``max_batch``) and 65,536 elements (what ``max_binary_body`` allows):

- **one row**: every writer reserves on the same platform (what one busy platform does);
- **own rows** (the floor, measured in the same run): each writer on its own platform,
  the same transaction without the shared row; the ratio one-row / own-rows is the cost
  of the hot row, and own-rows is what sharding the counter would reach.

From batches/s it derives the uploads/s one platform row carries (elements/s divided by
the elements per upload: 388 for a PDQ upload, 1 for an exact one) against what 10^9
uploads a day need (11,574/s on average). The writers share the machine's 2 cores with
PostgreSQL, so absolute rates are low; compare within a run.

Run: ``python -m benchmarks.bench_quota [--seconds S]`` or ``python -m benchmarks quota``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from blindmatch.service import platforms, quotas
from blindmatch.service.bootstrap import bootstrap
from blindmatch.service.schema import match_batches, match_sessions
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database, now

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from service_support import postgres_server  # noqa: E402

BATCHES = (128, 1024, 4096, 65536)
WRITERS = (1, 2, 4)
PDQ_ELEMENTS = 388
"""Elements of one PDQ upload (384 bands, pads, canaries: benchmarks/results/scale.md)."""
UPLOADS_PER_DAY = 10**9
_DAY = 86_400


def _writer(
    data_dir: str, url: str, platform_name: str, batch: int, start_at: float, seconds: float
) -> tuple[int, list[float]]:
    """Run the evaluate request's reservation transaction until the time is up; return
    the batches committed and each one's latency in seconds."""
    database = Database(Settings(Path(data_dir), url))
    try:
        with database.begin() as connection:
            chosen = next(
                p for p in platforms.list_platforms(connection) if p.name == platform_name
            )
            session = secrets.token_hex(16)
            connection.execute(
                sa.insert(match_sessions).values(
                    id=session, platform=chosen.id, epoch=0, created_at=now(), closed=False
                )
            )
        elements = secrets.token_bytes(32 * batch)
        done = 0
        latencies: list[float] = []
        while time.time() < start_at:
            time.sleep(0.005)
        deadline = start_at + seconds
        while time.time() < deadline:
            began = time.perf_counter()
            with database.begin() as connection:
                quotas.reserve(connection, chosen, batch)
                connection.execute(
                    sa.insert(match_batches).values(
                        session=session, batch_id=done, elements=elements, proved=False
                    )
                )
            latencies.append(time.perf_counter() - began)
            done += 1
        return done, latencies
    finally:
        database.dispose()


def _warm(_: int) -> None:
    time.sleep(1.0)  # keeps this worker busy so that the pool starts all of them


def _run(
    pool: ProcessPoolExecutor,
    data_dir: Path,
    url: str,
    names: list[str],
    batch: int,
    seconds: float,
) -> dict[str, Any]:
    start_at = time.time() + 1.5  # the writers connect and wait for the same instant
    futures = [
        pool.submit(_writer, str(data_dir), url, name, batch, start_at, seconds) for name in names
    ]
    results = [f.result() for f in futures]
    batches = sum(r[0] for r in results)
    latencies = sorted(x for r in results for x in r[1])
    return {
        "batches_per_s": batches / seconds,
        "elements_per_s": batches * batch / seconds,
        "latency_ms_median": 1000 * statistics.median(latencies),
        "latency_ms_p99": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_quota")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per cell")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp, postgres_server() as pg:
        url = pg.new_database()
        settings = Settings(Path(tmp) / "data", url)
        database, _ = bootstrap(settings)
        with database.begin() as connection:
            for n in range(max(WRITERS)):
                platforms.create(connection, f"platform-{n}", 10**15)
        database.dispose()
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max(WRITERS), mp_context=context) as pool:
            list(pool.map(_warm, range(max(WRITERS))))
            for batch in BATCHES:
                for writers in WRITERS:
                    one = _run(
                        pool, settings.data_dir, url, ["platform-0"] * writers, batch, args.seconds
                    )
                    own = _run(
                        pool,
                        settings.data_dir,
                        url,
                        [f"platform-{n}" for n in range(writers)],
                        batch,
                        args.seconds,
                    )
                    row: dict[str, Any] = {
                        "batch": batch,
                        "writers": writers,
                        "one_row": one,
                        "own_rows": own,
                    }
                    row["ratio_one_to_own"] = one["batches_per_s"] / own["batches_per_s"]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    needed = UPLOADS_PER_DAY / _DAY
    best = {
        b: max(r["one_row"]["elements_per_s"] for r in rows if r["batch"] == b) for b in BATCHES
    }
    result = {
        "machine": (
            f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "seconds_per_cell": args.seconds,
        "rows": rows,
        "uploads_per_s_needed_at_1e9_per_day": needed,
        "one_row_best_elements_per_s": best,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quota.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# The daily quota row on PostgreSQL under concurrent evaluate batches",
        "",
        f"One run on {result['machine']}, {args.seconds:.0f} s per cell; writers are "
        "processes on the same machine as PostgreSQL (a throwaway cluster, fsync on). Each "
        "batch is the evaluate request's transaction: `quotas.reserve` + the batch's "
        "`INSERT` (32 bytes per element) + a durable commit. *one row*: every writer on one "
        "platform; *own rows*: each writer on its own platform (the floor, no shared row).",
        "",
        "| batch | writers | one row: batches/s | own rows: batches/s | one/own | one row: "
        "median / p99 latency (ms) | one row: elements/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        one, own = row["one_row"], row["own_rows"]
        lines.append(
            f"| {row['batch']} | {row['writers']} | {one['batches_per_s']:.0f} | "
            f"{own['batches_per_s']:.0f} | {row['ratio_one_to_own']:.2f} | "
            f"{one['latency_ms_median']:.1f} / {one['latency_ms_p99']:.1f} | "
            f"{one['elements_per_s']:,.0f} |"
        )
    lines += [
        "",
        f"10^9 uploads a day are {needed:,.0f} uploads/s on average: "
        f"{needed:,.0f} elements/s if exact only, {needed * PDQ_ELEMENTS:,.0f} elements/s "
        f"for PDQ ({PDQ_ELEMENTS} elements per upload). One platform row carried at most "
        + ", ".join(f"{best[b]:,.0f} elements/s at batch {b}" for b in BATCHES)
        + " in this run.",
    ]
    (RESULTS / "quota.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
