"""Benchmark: what deltas cost a platform, the measured input of the rebuild policy.

What is measured
----------------
The publisher keeps publishing deltas until a bound of ``service.settings.Limits``
(``rebuild_max_deltas``, ``rebuild_delta_fraction``) makes it rebuild (docs/scaling.md,
"Rebuild policy"). A platform looks up its full index and every delta side by side
(``psi.index.IndexSet``): each delta is one more search per band (the tags and pads are
derived once per call; before that, each delta was one more KDF pass too:
``results/rebuild_before.md``). This benchmark measures, for real PDQ indexes (L = 384, the real
RFC 9497 build):

- lookup CPU per upload against the full index alone (the floor, same run), then with
  16, 64 and 256 one-reference deltas beside it (what a publish interval carries at
  10^4 reports a day), and after ``merge_indexes`` folded the deltas in (what a platform
  can do itself, without the key);
- the merge's time.

Lookups are of non-matching uploads (random outputs: every band searched, nothing
found), 64 per call, best of 3 calls. The machine is shared: compare within the run.

Run: ``python -m benchmarks.bench_rebuild [--base N]`` or ``python -m benchmarks rebuild``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from blindmatch.fingerprint.signals import default_registry
from blindmatch.protocols import signal_banding
from blindmatch.psi.index import (
    Index,
    IndexSet,
    Reference,
    add_references,
    build_index,
    merge_indexes,
)
from blindmatch.psi.keys import SecretKey

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
DELTA_COUNTS = (16, 64, 256)
UPLOADS = 64


def _per_upload_ms(lookups: Index | IndexSet, outputs: list[list[bytes]]) -> float:
    best = float("inf")
    for _ in range(3):
        began = time.process_time()
        lookups.lookup_many(outputs)
        best = min(best, time.process_time() - began)
    return 1000 * best / len(outputs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_rebuild")
    parser.add_argument("--base", type=int, default=256, help="references in the full index")
    args = parser.parse_args(argv)
    key = SecretKey.generate()
    banding = signal_banding(default_registry().get("pdq"))
    refs = [Reference(f"r{i}", "pdq", secrets.token_bytes(32)) for i in range(args.base)]
    base = Index.from_bytes(build_index(key, banding, refs, processes=1).data)
    files = [
        add_references(
            key, base.header, [Reference(f"d{i}", "pdq", secrets.token_bytes(32))], processes=1
        ).data
        for i in range(max(DELTA_COUNTS))
    ]
    deltas = [Index.from_bytes(data) for data in files]
    outputs = [[secrets.token_bytes(64) for _ in range(banding.count)] for _ in range(UPLOADS)]
    alone = _per_upload_ms(base, outputs)
    rows: list[dict[str, Any]] = []
    for count in DELTA_COUNTS:
        side_by_side = _per_upload_ms(IndexSet(base, deltas[:count]), outputs)
        began = time.perf_counter()
        merged = Index.from_bytes(merge_indexes(base, deltas[:count]))
        merge_s = time.perf_counter() - began
        rows.append(
            {
                "deltas": count,
                "side_by_side_ms_per_upload": side_by_side,
                "per_delta_ms_per_upload": (side_by_side - alone) / count,
                "merged_ms_per_upload": _per_upload_ms(merged, outputs),
                "merge_s": merge_s,
                "delta_bytes_each": len(files[0]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "machine": (
            f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "base_references": args.base,
        "bands": banding.count,
        "full_alone_ms_per_upload": alone,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rebuild.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# What deltas cost a platform's lookups (PDQ, L = 384)",
        "",
        f"One run on {result['machine']}. Full index of {args.base} references (real "
        f"build), deltas of one reference each; lookup CPU per non-matching upload, "
        f"{UPLOADS} uploads per call, best of 3. Full index alone: **{alone:.3f} ms** per "
        "upload (the floor).",
        "",
        "| deltas | side by side (ms/upload) | per delta (ms/upload) | after merge_indexes "
        "(ms/upload) | merge (s) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['deltas']} | {row['side_by_side_ms_per_upload']:.3f} | "
            f"{row['per_delta_ms_per_upload']:.4f} | {row['merged_ms_per_upload']:.3f} | "
            f"{row['merge_s']:.3f} |"
        )
    (RESULTS / "rebuild.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
