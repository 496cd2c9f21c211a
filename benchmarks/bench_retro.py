"""Retro-matching cost: past uploads looked up in a new delta locally vs matched online.

For PDQ (L = 384, with and without the 8 dihedral variants), MD5 banded and MD5 in a
compact exact index (records hold the OPRF output: docs/protocol.md 7.5), per past upload
and delta: ``retro_matches`` over a retaining session's records, ``RetroStore.matches`` (the
same from a SQLite file), ``RetroStore.check`` (what the SDK's ``retro_matches()`` does per
delta: the lookup, the seen filter and the transaction that remembers the delta was
checked; each round first marks the records unchecked again), and, as the peer in the
same run, a fresh in-process session (blind, evaluate, finalize, look up against base +
delta, no network) of the same uploads.
The online figure is a lower bound of a real match (no HTTP, no queueing, no quota), so the
ratio understates what retro-matching saves. ``store B/record`` is the checkpointed SQLite
file's size over its records. Writes ``results/retro.json`` and ``.md``.
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
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from blindmatch.client.retro_store import RetroStore
from blindmatch.protocols import ClearinghouseSession, PlatformSession, SessionPair, Upload
from blindmatch.protocols.retro import retro_matches
from blindmatch.psi import oprf
from blindmatch.psi.bands import Banding, exact_banding, pdq_banding
from blindmatch.psi.compact import (
    CompactIndex,
    CompactIndexSet,
    add_compact_references,
    build_compact_index,
)
from blindmatch.psi.index import Index, IndexSet, Reference, add_references, build_index
from blindmatch.psi.keys import SecretKey

RESULTS = Path(__file__).parent / "results"
KEY = SecretKey.derive(bytes(range(32)), b"bench-retro", mode=oprf.Mode.VOPRF, epoch=1)


def _median(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _online(
    index: Index | IndexSet | CompactIndex | CompactIndexSet, uploads: list[Upload]
) -> PlatformSession:
    session = PlatformSession(index, KEY.public_key, batch_size=1024, retain=False)
    session.add_uploads(uploads)
    clearinghouse = ClearinghouseSession(KEY, element_limit=10**9, max_batch=1024)
    SessionPair(session, clearinghouse).run()
    return session


def _case(
    name: str,
    banding: Banding,
    references: int,
    uploads: list[Upload],
    rounds: int,
    *,
    compact: bool = False,
) -> dict[str, Any]:
    rng = random.Random(name)
    width = banding.hash_bytes
    refs = [Reference(f"r{i}", banding.signal, rng.randbytes(width)) for i in range(references)]
    added = [Reference(f"d{i}", banding.signal, rng.randbytes(width)) for i in range(10)]
    base: Index | CompactIndex
    delta: Index | CompactIndex
    both: IndexSet | CompactIndexSet
    if compact:
        base = CompactIndex.from_bytes(build_compact_index(KEY, banding, refs).to_bytes())
        delta = CompactIndex.from_bytes(add_compact_references(KEY, base.header, added).to_bytes())
        both = CompactIndexSet(base, [delta])
    else:
        base = Index.from_bytes(build_index(KEY, banding, refs, processes=1).to_bytes())
        delta = Index.from_bytes(add_references(KEY, base.header, added, processes=1).to_bytes())
        both = IndexSet(base, [delta])
    retaining = PlatformSession(base, KEY.public_key, batch_size=1024, retain=True)
    retaining.add_uploads(uploads)
    SessionPair(retaining, ClearinghouseSession(KEY, element_limit=10**9, max_batch=1024)).run()
    records = retaining.retained
    with tempfile.TemporaryDirectory() as folder:
        store = RetroStore(Path(folder) / "retro.sqlite")
        store.add(records)
        retro = _median(lambda: retro_matches(records, delta), rounds)
        stored = _median(lambda: store.matches(delta), rounds)

        def check() -> None:
            store._db.execute("UPDATE retro_record SET covered = 0")
            store._db.execute("DELETE FROM retro_seen")
            store.check(delta, 1)

        checked = _median(check, rounds)
        store.close()
        size = (Path(folder) / "retro.sqlite").stat().st_size
    online = _median(lambda: _online(both, uploads), rounds)
    count = len(uploads)
    return {
        "case": name,
        "uploads": count,
        "records": len(records),
        "references": references,
        "delta_references": len(added),
        "store_bytes_per_record": size / len(records),
        "retro_us_per_upload": retro / count * 1e6,
        "store_us_per_upload": stored / count * 1e6,
        "check_us_per_upload": checked / count * 1e6,
        "online_us_per_upload": online / count * 1e6,
        "online_over_retro": online / retro,
        "online_over_store": online / stored,
        "online_over_check": online / checked,
    }


def _markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Retro-matching vs a fresh online match, per past upload and delta",
        "",
        f"{meta['machine']}; median of {meta['rounds']} rounds; online = an in-process "
        "session against base + delta (no network: a lower bound).",
        "",
        "| case | uploads | retro us | store us | check us | online us | online / retro "
        "| online / check | store B/record |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['uploads']} | {r['retro_us_per_upload']:.0f} | "
            f"{r['store_us_per_upload']:.0f} | {r['check_us_per_upload']:.0f} | "
            f"{r['online_us_per_upload']:.0f} | "
            f"{r['online_over_retro']:.1f}x | {r['online_over_check']:.1f}x | "
            f"{r['store_bytes_per_record']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write ``results/retro.json`` and ``.md``; return 0."""
    parser = argparse.ArgumentParser(prog="bench_retro")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--references", type=int, default=2_000)
    parser.add_argument("--pdq-uploads", type=int, default=16)
    parser.add_argument("--md5-uploads", type=int, default=1_000)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    pdq = [Upload(f"p{i}", "pdq", rng.randbytes(32), 90) for i in range(args.pdq_uploads)]
    dihedral = [
        Upload.dihedral(f"d{i}", "pdq", [rng.randbytes(32) for _ in range(8)], 90)
        for i in range(max(1, args.pdq_uploads // 4))
    ]
    md5 = [
        Upload(
            f"m{i}", "md5", hashlib.md5(bytes([i % 256, i // 256]), usedforsecurity=False).digest()
        )
        for i in range(args.md5_uploads)
    ]
    results = [
        _case("pdq", pdq_banding(384), args.references, pdq, args.rounds),
        _case("pdq dihedral", pdq_banding(384), args.references, dihedral, args.rounds),
        _case("md5", exact_banding("md5", 128), args.references, md5, args.rounds),
        _case(
            "md5 compact",
            exact_banding("md5", 128),
            args.references,
            md5,
            args.rounds,
            compact=True,
        ),
    ]
    meta = {
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}".strip(),
        "rounds": args.rounds,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retro.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=1) + "\n", "utf-8"
    )
    (RESULTS / "retro.md").write_text(_markdown(results, meta), "utf-8")
    print(_markdown(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
