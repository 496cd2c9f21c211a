"""Benchmark: the sans-IO sessions against the libsodium work they cannot avoid, one run.

What is measured
----------------
Per element, with the process CPU clock (time descheduled does not count), on exact MD5
uploads against an index of ``--references`` entries, and on PDQ uploads (L = 384 bands):

- **clearinghouse**: ``ClearinghouseSession.receive`` of a whole ``EvaluateRequest``
  (decode, validate every element, evaluate, encode). Floor: one scalar multiplication per
  element, libsodium called through ``_sodium.scalarmult_many`` in the same round.
- **platform**: ``next_request`` plus ``receive`` of the reply (blind, pad, shuffle, encode;
  decode, finalize, index lookup, canary check). Floor: hash-to-group plus two scalar
  multiplications per element (blind and unblind), timed in the same round.
- **bytes**: what each direction carries per element and per upload; and, in one untimed
  session each (bytes do not depend on the machine), per PDQ upload for 1, 8 and 64 uploads
  per flush at batch sizes 256 and 1024, with every request a full batch
  (``pad_quantum = batch_size``) for comparison, and with dihedral queries (8 variants per
  upload). Before issue 10 (full-batch padding and 384-element canaries), 8 PDQ uploads at
  batch 1024 cost 16,397 bytes each way per upload.

The verdict is the median over rounds of the per-round ratio session/floor. The machine is
shared and noisy; compare ratios, not absolute times.

Run: ``python -m benchmarks.bench_protocol [--rounds N] [--references N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from blindmatch.protocols import ClearinghouseSession, PlatformSession
from blindmatch.psi import _sodium, oprf
from blindmatch.psi.bands import exact_banding, pdq_banding
from blindmatch.psi.group import Scalar
from blindmatch.psi.hash_to_curve import hash_to_ristretto255_many
from blindmatch.psi.index import Index, Reference, build_index
from blindmatch.psi.keys import SecretKey

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"


def _clock() -> float:
    return time.process_time()


def _md5(i: int) -> bytes:
    return hashlib.md5(f"bench-{i}".encode(), usedforsecurity=False).digest()


def _floors(batch: int) -> tuple[float, float]:
    """(one scalar multiplication, hash-to-group) in seconds per element, this round."""
    points = _sodium.from_hash_many([os.urandom(64) for _ in range(batch)])
    key = bytes(Scalar.random())
    start = _clock()
    _sodium.scalarmult_many(key, points)
    mult = (_clock() - start) / batch
    inputs = [os.urandom(40) for _ in range(batch)]
    dst = b"HashToGroup-" + oprf.context_string(oprf.Mode.VOPRF)
    start = _clock()
    hash_to_ristretto255_many(inputs, dst)
    h2g = (_clock() - start) / batch
    return mult, h2g


def _session_round(
    index: Index, key: SecretKey, uploads: list[tuple[str, str, bytes, int | None]], batch: int
) -> dict[str, float]:
    from blindmatch.protocols import Upload

    platform_session = PlatformSession(index, key.public_key, batch_size=batch)
    clearinghouse = ClearinghouseSession(key, element_limit=1 << 40, max_batch=batch)
    platform_session.add_uploads([Upload(r, s, h, q) for r, s, h, q in uploads])
    platform_session.receive(clearinghouse.receive(platform_session.hello()))
    platform_time = server_time = 0.0
    while platform_session.wants_to_send:
        t0 = _clock()
        request = platform_session.next_request()
        t1 = _clock()
        reply = clearinghouse.receive(request)
        t2 = _clock()
        platform_session.receive(reply)
        t3 = _clock()
        platform_time += (t1 - t0) + (t3 - t2)
        server_time += t2 - t1
    stats = platform_session.stats
    return {
        "elements": stats.elements_sent,
        "pads": stats.pad_elements,
        "uploads": stats.uploads_done,
        "platform_s": platform_time,
        "clearinghouse_s": server_time,
        "bytes_up": stats.bytes_sent,
        "bytes_down": stats.bytes_received,
        "requests": stats.requests,
    }


BYTES_CASES: tuple[tuple[str, int, int, int | None, bool], ...] = (
    # name, uploads, batch size, pad quantum (None: the default), dihedral
    ("1 upload, batch 256", 1, 256, None, False),
    ("8 uploads, batch 256", 8, 256, None, False),
    ("8 uploads, batch 1024", 8, 1024, None, False),
    ("8 uploads, batch 1024, full batches", 8, 1024, 1024, False),
    ("64 uploads, batch 1024", 64, 1024, None, False),
    ("8 uploads, batch 1024, dihedral", 8, 1024, None, True),
)


def _bytes_per_upload(pdq_index: Index, key: SecretKey) -> list[dict[str, Any]]:
    """Bytes each way per PDQ upload in the :data:`BYTES_CASES` (one session each)."""
    from blindmatch.protocols import Upload
    from blindmatch.protocols.platform import DEFAULT_PAD_QUANTUM

    rng = random.Random(2)
    rows = []
    for name, count, batch, quantum, dihedral in BYTES_CASES:
        platform_session = PlatformSession(
            pdq_index,
            key.public_key,
            batch_size=batch,
            pad_quantum=DEFAULT_PAD_QUANTUM if quantum is None else quantum,
        )
        clearinghouse = ClearinghouseSession(key, element_limit=1 << 40, max_batch=batch)
        uploads = [
            Upload.dihedral(f"q{i}", "pdq", [rng.randbytes(32) for _ in range(8)], 90)
            if dihedral
            else Upload(f"q{i}", "pdq", rng.randbytes(32), 90)
            for i in range(count)
        ]
        platform_session.add_uploads(uploads)
        platform_session.receive(clearinghouse.receive(platform_session.hello()))
        while platform_session.wants_to_send:
            platform_session.receive(clearinghouse.receive(platform_session.next_request()))
        stats = platform_session.stats
        rows.append(
            {
                "case": name,
                "uploads": count,
                "batch_size": batch,
                "elements": stats.elements_sent,
                "pads": stats.pad_elements,
                "requests": stats.requests,
                "bytes_up_per_upload": stats.bytes_sent / count,
                "bytes_down_per_upload": stats.bytes_received / count,
            }
        )
    return rows


def _run(rounds: int, references: int, uploads: int, pdq_uploads: int) -> dict[str, Any]:
    key = SecretKey.generate()
    exact_index = Index.from_bytes(
        build_index(
            key,
            exact_banding("md5", 128),
            [Reference(f"r{i}", "md5", _md5(i)) for i in range(references)],
        ).to_bytes()
    )
    rng = random.Random(1)
    pdq_index = Index.from_bytes(
        build_index(
            key,
            pdq_banding(384),
            [Reference(f"p{i}", "pdq", rng.randbytes(32)) for i in range(100)],
        ).to_bytes()
    )
    exact_uploads: list[tuple[str, str, bytes, int | None]] = [
        (f"u{i}", "md5", _md5(i), None)
        for i in range(references - uploads // 2, references + uploads // 2)
    ]
    pdq_batch: list[tuple[str, str, bytes, int | None]] = [
        (f"q{i}", "pdq", rng.randbytes(32), 90) for i in range(pdq_uploads)
    ]
    rows: dict[str, list[dict[str, float]]] = {"exact": [], "pdq": []}
    for _ in range(rounds):
        mult, h2g = _floors(1024)
        for name, index, batch, size in (
            ("exact", exact_index, exact_uploads, 1024),
            ("pdq", pdq_index, pdq_batch, 1024),
        ):
            result = _session_round(index, key, batch, size)
            n = result["elements"]
            result["ch_per_element_us"] = result["clearinghouse_s"] / n * 1e6
            result["platform_per_element_us"] = result["platform_s"] / n * 1e6
            result["ch_ratio"] = result["clearinghouse_s"] / n / mult
            result["platform_ratio"] = result["platform_s"] / n / (2 * mult + h2g)
            result["floor_mult_us"] = mult * 1e6
            result["floor_h2g_us"] = h2g * 1e6
            rows[name].append(result)
    summary: dict[str, Any] = {}
    for name, results in rows.items():
        last = results[-1]
        summary[name] = {
            "uploads": last["uploads"],
            "elements": last["elements"],
            "pads": last["pads"],
            "requests": last["requests"],
            "floor_scalarmult_us_median": statistics.median(r["floor_mult_us"] for r in results),
            "floor_hash_to_group_us_median": statistics.median(r["floor_h2g_us"] for r in results),
            "clearinghouse_us_per_element_median": statistics.median(
                r["ch_per_element_us"] for r in results
            ),
            "clearinghouse_ratio_median": statistics.median(r["ch_ratio"] for r in results),
            "platform_us_per_element_median": statistics.median(
                r["platform_per_element_us"] for r in results
            ),
            "platform_ratio_median": statistics.median(r["platform_ratio"] for r in results),
            "bytes_up_per_element": last["bytes_up"] / last["elements"],
            "bytes_down_per_element": last["bytes_down"] / last["elements"],
            "bytes_up_per_upload": last["bytes_up"] / last["uploads"],
            "bytes_down_per_upload": last["bytes_down"] / last["uploads"],
        }
    summary["pdq_bytes"] = _bytes_per_upload(pdq_index, key)
    return summary


def _markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# Protocol sessions vs the libsodium floor",
        "",
        f"One run on {meta['machine']}, {meta['rounds']} rounds, median of per-round ratios. "
        "Clearinghouse floor: 1 scalar multiplication per element; platform floor: "
        "hash-to-group + 2 scalar multiplications per element (blind, unblind).",
        "",
        "| workload | uploads | elements | CH us/elem | CH / floor | platform us/elem "
        "| platform / floor | bytes up/upload | bytes down/upload |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        if name == "pdq_bytes":
            continue
        lines.append(
            f"| {name} | {row['uploads']} | {row['elements']} "
            f"| {row['clearinghouse_us_per_element_median']:.1f} "
            f"| {row['clearinghouse_ratio_median']:.2f} "
            f"| {row['platform_us_per_element_median']:.1f} "
            f"| {row['platform_ratio_median']:.2f} "
            f"| {row['bytes_up_per_upload']:.0f} | {row['bytes_down_per_upload']:.0f} |"
        )
    lines += [
        "",
        "Exact uploads (MD5, one band) go 1024 elements per request, pads included in the "
        "element counts; PDQ uploads carry 384 elements each. The platform time includes the "
        "index lookup and the canary queries the session mixes in.",
        "",
        "## Bytes per PDQ upload",
        "",
        "One session per line (384 elements per upload, a 2-element canary per flush, the "
        "last request padded to a multiple of 128 unless every request is a full batch). "
        "Before issue 10, 8 uploads at batch 1024 cost 16,397 bytes each way per upload.",
        "",
        "| case | elements | pads | requests | bytes up/upload | bytes down/upload |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary["pdq_bytes"]:
        lines.append(
            f"| {row['case']} | {row['elements']} | {row['pads']} | {row['requests']} "
            f"| {row['bytes_up_per_upload']:.0f} | {row['bytes_down_per_upload']:.0f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write ``results/protocol.json`` and ``.md``; return 0."""
    parser = argparse.ArgumentParser(prog="bench_protocol")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--references", type=int, default=10_000)
    parser.add_argument("--uploads", type=int, default=4_000)
    parser.add_argument("--pdq-uploads", type=int, default=8)
    args = parser.parse_args(argv)
    summary = _run(args.rounds, args.references, args.uploads, args.pdq_uploads)
    meta = {
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}".strip(),
        "rounds": args.rounds,
        "references": args.references,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "protocol.json").write_text(
        json.dumps({"meta": meta, "results": summary}, indent=1) + "\n", "utf-8"
    )
    (RESULTS / "protocol.md").write_text(_markdown(summary, meta), "utf-8")
    print(_markdown(summary, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
