"""Regenerate the golden compact-index vectors (run only when format version 3 changes).

    .venv/bin/python tests/vectors/compact/generate_compact.py

Writes ``cases.json`` (the parameters of every golden compact index, its file name and
SHA-256, the handle -> report id map) and one ``<id>.bmidx`` per case. Nothing is random:
the key is RFC 9497 DeriveKeyPair from a fixed seed, the references SHA-256/MD5 of fixed
strings, and a compact build is a function of key, hashes, canaries, rate, seed and
``shard_keys``. The tests rebuild each case from ``cases.json`` and compare byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from blindmatch.psi.bands import exact_banding
from blindmatch.psi.compact import (
    BuiltCompactIndex,
    add_compact_references,
    build_compact_index,
)
from blindmatch.psi.index import Reference
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.oprf import Mode

__all__ = ["CASES", "build_case", "main"]

HERE = Path(__file__).parent


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


CASES: list[dict[str, object]] = [
    {
        # One shard; a hash reported twice (R2 and R4) is one key whose handle maps to R2.
        "id": "sha256-compact",
        "signal": "sha256",
        "hash_bits": 256,
        "key_seed": "05" * 32,
        "key_info": "blindmatch golden",
        "epoch": 7,
        "false_positive_rate": 1e-12,
        "seed": 0,
        "shard_keys": 8192,
        "references": [
            {"report_id": "R1", "hash": _sha256("compact golden 1")},
            {"report_id": "R1", "hash": _sha256("compact golden 2")},
            {"report_id": "R2", "hash": _sha256("compact golden 3")},
            {"report_id": "R3", "hash": _sha256("compact golden 4")},
            {"report_id": "R4", "hash": _sha256("compact golden 3")},
        ],
        "canaries": [_sha256("compact golden canary 1"), _sha256("compact golden canary 2")],
    },
    {
        # Ten shards of 4 keys (2 * 40 / 8: five mix the widths more coarsely), rate 1e-13.
        "id": "md5-compact-shards",
        "signal": "md5",
        "hash_bits": 128,
        "key_seed": "06" * 32,
        "key_info": "blindmatch golden",
        "epoch": 1,
        "false_positive_rate": 1e-13,
        "seed": 7,
        "shard_keys": 8,
        "references": [
            {"report_id": f"M{i}", "hash": _md5(f"compact golden md5 {i}")} for i in range(39)
        ],
        "canaries": [_md5("compact golden md5 canary")],
    },
    {
        # One shard of 121 keys at r = 43 (rate 2**-43): 139 rows of 43 bits end mid-byte.
        "id": "md5-compact-r43",
        "signal": "md5",
        "hash_bits": 128,
        "key_seed": "06" * 32,
        "key_info": "blindmatch golden",
        "epoch": 1,
        "false_positive_rate": 2.0**-43,
        "seed": 3,
        "shard_keys": 8192,
        "references": [
            {"report_id": f"N{i}", "hash": _md5(f"compact golden md5 r43 {i}")} for i in range(120)
        ],
        "canaries": [_md5("compact golden md5 canary")],
    },
    {
        # A delta of sha256-compact: two new references, no canaries.
        "id": "sha256-compact-delta",
        "base": "sha256-compact",
        "signal": "sha256",
        "hash_bits": 256,
        "key_seed": "05" * 32,
        "key_info": "blindmatch golden",
        "epoch": 7,
        "false_positive_rate": 1e-12,
        "seed": 1,
        "shard_keys": 8192,
        "references": [
            {"report_id": "R5", "hash": _sha256("compact golden 5")},
            {"report_id": "R6", "hash": _sha256("compact golden 6")},
        ],
        "canaries": [],
    },
]


def _key(case: dict[str, object]) -> SecretKey:
    return SecretKey.derive(
        bytes.fromhex(str(case["key_seed"])),
        str(case["key_info"]).encode(),
        mode=Mode.VOPRF,
        epoch=int(str(case["epoch"])),
    )


def build_case(case: dict[str, object]) -> BuiltCompactIndex:
    """Build a case's compact index (a delta builds its base case first)."""
    banding = exact_banding(str(case["signal"]), int(str(case["hash_bits"])))
    spec = case["references"]
    assert isinstance(spec, list)
    references = [
        Reference(str(r["report_id"]), banding.signal, bytes.fromhex(str(r["hash"]))) for r in spec
    ]
    rate = float(str(case["false_positive_rate"]))
    seed = int(str(case["seed"]))
    shard_keys = int(str(case["shard_keys"]))
    if "base" in case:
        base = build_case(next(c for c in CASES if c["id"] == case["base"]))
        return add_compact_references(
            _key(case),
            base.header,
            references,
            false_positive_rate=rate,
            seed=seed,
            shard_keys=shard_keys,
        )
    canaries = case["canaries"]
    assert isinstance(canaries, list)
    return build_compact_index(
        _key(case),
        banding,
        references,
        canaries=[bytes.fromhex(str(c)) for c in canaries],
        false_positive_rate=rate,
        seed=seed,
        shard_keys=shard_keys,
    )


def main() -> int:
    """Write cases.json and the golden compact index files."""
    records = []
    for case in CASES:
        built = build_case(case)
        name = f"{case['id']}.bmidx"
        (HERE / name).write_bytes(built.data)
        record = dict(case)
        record["file"] = name
        record["file_sha256"] = hashlib.sha256(built.data).hexdigest()
        record["handles"] = {bytes(h).hex(): rid for h, rid in built.handles.items()}
        record["result_bits"] = [s.result_bits for s in built.header.shards]
        records.append(record)
    cases = {"note": "generated by generate_compact.py; see README.md", "cases": records}
    (HERE / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
