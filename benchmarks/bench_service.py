"""Benchmark: the clearinghouse service over loopback HTTP against the in-process session.

What is measured
----------------
- **evaluation throughput**: elements per second that ``blindmatch serve`` (SQLite, 1 and
  2 uvicorn workers) evaluates for concurrent clients sending ``EvaluateRequest``s of
  ``--batch`` elements over loopback HTTP, against the in-process
  ``ClearinghouseSession.receive`` of the same requests on one core in the same run. The
  verdict is HTTP elements/s divided by (workers x in-process elements/s): the share of
  each core the HTTP layer leaves to the evaluation (target: at least 0.8 at 4096).
  The client threads share the machine's cores with the server.
- **intakes per second**: concurrent anonymous reports, each acknowledged only after a
  durable commit, on SQLite (WAL, synchronous=FULL) and on PostgreSQL (a throwaway
  cluster as in the tests, or ``BLINDMATCH_TEST_POSTGRES_URL``).

The machine is shared and noisy; compare the ratios, not absolute numbers.

Run: ``python -m benchmarks.bench_service [--batch N] [--batches N] [--intakes N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from blindmatch.protocols import ClearinghouseSession
from blindmatch.protocols.messages import EvaluateRequest, Hello, ServerInfo, decode
from blindmatch.psi.hash_to_curve import hash_to_ristretto255_many
from blindmatch.psi.keys import SecretKey

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from service_support import postgres_server, start_server  # noqa: E402


def _elements(count: int) -> tuple[Any, ...]:
    inputs = [secrets.token_bytes(32) for _ in range(count)]
    return tuple(hash_to_ristretto255_many(inputs, b"bench-service"))


def _in_process(batch: int, batches: int) -> float:
    key = SecretKey.generate()
    session = ClearinghouseSession(key, element_limit=batch * batches, max_batch=batch)
    info = decode(session.receive(Hello().encode()))
    assert isinstance(info, ServerInfo)
    elements = _elements(batch)
    requests = [
        EvaluateRequest(info.suite, info.mode, info.key_epoch, info.key_id, n, elements).encode()
        for n in range(batches)
    ]
    start = time.perf_counter()
    for request in requests:
        session.receive(request)
    return batch * batches / (time.perf_counter() - start)


def _over_http(root: Path, workers: int, batch: int, batches: int) -> float:
    server = start_server(
        root / f"http-{workers}",
        "",
        workers=workers,
        limits={"max_batch": str(batch), "publish_interval": "3600"},
    )
    try:
        created = server.admin("platform", "create", "bench", "--daily-elements", str(10**12))
        auth = {"Authorization": f"Bearer {json.loads(created.stdout)['api_key']}"}
        elements = _elements(batch)
        clients = 2 * workers

        def client(number: int) -> int:
            with httpx.Client(base_url=server.url, timeout=300) as http:
                opened = http.post("/v1/match/sessions", content=Hello().encode(), headers=auth)
                info = decode(opened.content)
                assert isinstance(info, ServerInfo)
                path = opened.headers["Location"]
                for n in range(batches):
                    body = EvaluateRequest(
                        info.suite, info.mode, info.key_epoch, info.key_id, n, elements
                    ).encode()
                    answer = http.post(path, content=body, headers=auth)
                    assert answer.status_code == 200, answer.headers
            return batch * batches

        with ThreadPoolExecutor(clients) as pool:  # warm up every worker once
            list(pool.map(lambda _: None, range(clients)))
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            done = sum(pool.map(client, range(clients)))
        return done / (time.perf_counter() - start)
    finally:
        server.stop()


def _intakes(root: Path, name: str, database_url: str, count: int) -> float:
    server = start_server(
        root / f"intake-{name}",
        database_url,
        limits={"intake_per_hour": str(10 * count), "publish_interval": "3600"},
    )
    clients = [httpx.Client(base_url=server.url, timeout=60) for _ in range(8)]
    try:

        def send(number: int) -> None:
            digest = hashlib.sha256(f"{name} {number}".encode()).hexdigest()
            answer = clients[number % len(clients)].post(
                "/v1/reports",
                json={
                    "content_kind": "image",
                    "age_attestation": "adult",
                    "fingerprints": [{"signal": "sha256", "hash": digest}],
                },
            )
            assert answer.status_code == 201

        def lane(first: int) -> None:
            for number in range(first, count, len(clients)):
                send(number)

        start = time.perf_counter()
        with ThreadPoolExecutor(len(clients)) as pool:
            list(pool.map(lane, range(len(clients))))
        return count / (time.perf_counter() - start)
    finally:
        for client in clients:
            client.close()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_service")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--batches", type=int, default=4, help="batches per client")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--intakes", type=int, default=400)
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        root = Path(tmp)
        for workers in (1, 2):
            ratios: list[tuple[float, float, float]] = []
            for _ in range(args.rounds):
                local = _in_process(args.batch, args.batches)
                http = _over_http(root / f"r{len(ratios)}", workers, args.batch, args.batches)
                ratios.append((http, local, http / (workers * local)))
            rows.append(
                {
                    "workers": workers,
                    "batch": args.batch,
                    "http_elements_per_s": statistics.median(r[0] for r in ratios),
                    "in_process_elements_per_s": statistics.median(r[1] for r in ratios),
                    "ratio_per_core_median": statistics.median(r[2] for r in ratios),
                }
            )
        intakes = {"sqlite": _intakes(root, "sqlite", "", args.intakes)}
        with postgres_server() as pg:
            intakes["postgresql"] = _intakes(root, "postgresql", pg.new_database(), args.intakes)
    result = {
        "machine": (
            f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "evaluation": rows,
        "intakes_per_s": intakes,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "service.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Clearinghouse service over loopback HTTP vs the in-process session",
        "",
        f"One run on {result['machine']}; median over {args.rounds} rounds. Clients: 2 per "
        "worker, on the same machine. Ratio = HTTP elements/s / (workers x in-process "
        "elements/s on one core); target >= 0.8 at 4096.",
        "",
        "| workers | batch | HTTP elements/s | in-process elements/s (1 core) | ratio per core |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['workers']} | {row['batch']} | {row['http_elements_per_s']:.0f} | "
            f"{row['in_process_elements_per_s']:.0f} | {row['ratio_per_core_median']:.2f} |"
        )
    lines += ["", "| database | intakes/s (8 concurrent clients, durable commit) |", "|---|---|"]
    lines += [f"| {name} | {value:.0f} |" for name, value in intakes.items()]
    (RESULTS / "service.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
