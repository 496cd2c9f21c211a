"""Benchmark: uploads matched per second through the platform SDK over loopback HTTP,
against the same uploads matched by the in-process session pair in the same run.

What is measured
----------------
End to end: ``PlatformClient.match`` against a real ``blindmatch serve`` (SQLite, 1
worker) on loopback, with the indexes already in the client's cache (a first call warms
it), so a call is: the manifest, a session, the evaluation requests (pipelined), one
sampled audit, close, the manifest again. In process: a ``PlatformSession`` wired to a
``ClearinghouseSession`` by ``SessionPair`` on an index of the same size, with one audit.
The verdict is end-to-end uploads/s divided by in-process uploads/s (target: at least
0.7), for MD5 and PDQ uploads. Client, server and the in-process run share the machine's
2 cores; compare the ratios, not absolute numbers.

Run: ``python -m benchmarks.bench_client [--md5 N] [--pdq N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from blindmatch.client import ClientOptions, PlatformClient
from blindmatch.fingerprint.signals import default_registry
from blindmatch.protocols import (
    ClearinghouseSession,
    PlatformSession,
    SessionPair,
    Upload,
    signal_banding,
)
from blindmatch.psi.index import Index, Reference, build_index
from blindmatch.psi.keys import SecretKey

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from service_support import published_references, start_server, wait_published  # noqa: E402

REPORTS = 64


def _uploads(signal: str, count: int) -> list[Upload]:
    if signal == "md5":
        return [Upload(f"u{i}", "md5", secrets.token_bytes(16)) for i in range(count)]
    return [Upload(f"u{i}", "pdq", secrets.token_bytes(32), 90) for i in range(count)]


def _in_process(signal: str, references: list[bytes], uploads: list[Upload]) -> float:
    key = SecretKey.generate()
    banding = signal_banding(default_registry().get(signal))
    refs = [Reference(f"r{i}", signal, h) for i, h in enumerate(references)]
    index = Index.from_bytes(build_index(key, banding, refs, processes=1).to_bytes())
    start = time.perf_counter()
    session = PlatformSession([index], key.public_key, batch_size=4096)
    session.add_uploads(uploads)
    pair = SessionPair(session, ClearinghouseSession(key, element_limit=10**9, max_batch=4096))
    pair.run()
    pair.audit(1)
    pair.close()
    return len(uploads) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_client")
    parser.add_argument("--md5", type=int, default=8192, help="MD5 uploads per call")
    parser.add_argument("--pdq", type=int, default=64, help="PDQ uploads per call")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    references = {
        "md5": [secrets.token_bytes(16) for _ in range(REPORTS)],
        "pdq": [secrets.token_bytes(32) for _ in range(REPORTS)],
    }
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        root = Path(tmp)
        server = start_server(root / "data", "", limits={"intake_per_hour": "100000"})
        try:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                for i in range(REPORTS):
                    prints = [
                        {"signal": "md5", "hash": references["md5"][i].hex()},
                        {"signal": "pdq", "hash": references["pdq"][i].hex(), "quality": 90},
                    ]
                    body = {"content_kind": "image", "age_attestation": "minor"}
                    made = http.post("/v1/reports", json={**body, "fingerprints": prints})
                    assert made.status_code == 201
                # Reports after the first publication arrive in deltas: count those too.
                wait_published(http, lambda m: published_references(m, "pdq") == REPORTS)
                pinned = http.get("/v1/keys").json()["publication_key"]
            created = server.admin("platform", "create", "bench", "--daily-elements", str(10**12))
            api_key = json.loads(created.stdout)["api_key"]
            with PlatformClient(
                server.url,
                api_key=api_key,
                publication_key=pinned,
                cache_dir=root / "cache",
                options=ClientOptions(pipeline=2, audit_batches=1),
            ) as client:
                client.match(_uploads("md5", 1) + _uploads("pdq", 1))  # warm the cache
                for signal, count in (("md5", args.md5), ("pdq", args.pdq)):
                    measured: list[tuple[float, float, float]] = []
                    for _ in range(args.rounds):
                        uploads = _uploads(signal, count)
                        local = _in_process(signal, references[signal], uploads)
                        start = time.perf_counter()
                        report = client.match(uploads)
                        http_rate = count / (time.perf_counter() - start)
                        assert report.answered == count
                        measured.append((http_rate, local, http_rate / local))
                    rows.append(
                        {
                            "signal": signal,
                            "uploads_per_call": count,
                            "http_uploads_per_s": statistics.median(m[0] for m in measured),
                            "in_process_uploads_per_s": statistics.median(m[1] for m in measured),
                            "ratio_median": statistics.median(m[2] for m in measured),
                        }
                    )
        finally:
            server.stop()
    result = {
        "machine": (
            f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "references_per_index": REPORTS,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "client.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Platform SDK end to end over loopback HTTP vs the in-process session pair",
        "",
        f"One run on {result['machine']}; median over {args.rounds} rounds; {REPORTS} "
        "references per index, warm index cache, batches of 4096, 2 requests in flight, one "
        "audit per call on both sides. Ratio = end-to-end uploads/s / in-process uploads/s; "
        "target >= 0.7.",
        "",
        "| signal | uploads per call | end to end uploads/s | in-process uploads/s | ratio |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['signal']} | {row['uploads_per_call']} | {row['http_uploads_per_s']:.0f} | "
            f"{row['in_process_uploads_per_s']:.0f} | {row['ratio_median']:.2f} |"
        )
    (RESULTS / "client.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
