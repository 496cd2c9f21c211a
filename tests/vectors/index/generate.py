"""Regenerate the golden index vectors (run only when the format version changes).

    .venv/bin/python tests/vectors/index/generate.py

Writes ``bands.json`` (band positions and inputs), ``cases.json`` (the parameters of every
golden index) and one ``<id>.bmidx`` per case. Every value is derived from fixed labels:
the key by RFC 9497 DeriveKeyPair from a fixed seed, the references from SHA-256/MD5 of
fixed strings, the line coefficients from a SHAKE-256 stream (``ShakeStream``). The tests
rebuild each case from ``cases.json`` and compare byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from blindmatch.psi.bands import Banding, exact_banding, pdq_banding
from blindmatch.psi.index import Reference, build_index
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.oprf import Mode

__all__ = ["CASES", "VPDQ_BANDING", "ShakeStream", "banding_of", "build_case", "main"]

HERE = Path(__file__).parent


class ShakeStream:
    """Deterministic stand-in for ``os.urandom``: successive bytes of SHAKE-256(label)."""

    def __init__(self, label: str) -> None:
        self._xof = hashlib.shake_256(label.encode("ascii"))
        self._offset = 0

    def __call__(self, count: int) -> bytes:
        data = self._xof.digest(self._offset + count)[self._offset :]
        self._offset += count
        return data


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


CASES: list[dict[str, object]] = [
    {
        "id": "sha256-exact",
        "banding": {"kind": "exact", "signal": "sha256", "hash_bits": 256},
        "key_seed": "01" * 32,
        "key_info": "blindmatch golden",
        "epoch": 7,
        "tag_bytes": 4,
        "handle_bytes": 16,
        "randomness": "blindmatch golden randomness sha256-exact",
        "references": [
            {"report_id": "R1", "hash": _sha256("golden reference 1")},
            {"report_id": "R1", "hash": _sha256("golden reference 2")},
            {"report_id": "R2", "hash": _sha256("golden reference 3")},
            {"report_id": "R3", "hash": _sha256("golden reference 4")},
        ],
        "canaries": [_sha256("golden canary 1"), _sha256("golden canary 2")],
    },
    {
        "id": "md5-exact-tag8-handle8",
        "banding": {"kind": "exact", "signal": "md5", "hash_bits": 128},
        "key_seed": "02" * 32,
        "key_info": "blindmatch golden",
        "epoch": 1,
        "tag_bytes": 8,
        "handle_bytes": 8,
        "randomness": "blindmatch golden randomness md5",
        "references": [
            {"report_id": "M1", "hash": _md5("golden md5 reference 1")},
            {"report_id": "M2", "hash": _md5("golden md5 reference 2")},
        ],
        "canaries": [_md5("golden md5 canary")],
    },
    {
        "id": "pdq-256",
        "banding": {"kind": "pdq", "count": 256, "seed": "default"},
        "key_seed": "03" * 32,
        "key_info": "blindmatch golden",
        "epoch": 2,
        "tag_bytes": 4,
        "handle_bytes": 16,
        "randomness": "blindmatch golden randomness pdq-256",
        "references": [
            {"report_id": "P1", "hash": _sha256("golden pdq 1")},
            {"report_id": "P2", "hash": _sha256("golden pdq 2")},
            {"report_id": "P3", "hash": _sha256("golden pdq 3")},
        ],
        "canaries": [_sha256("golden pdq canary")],
    },
    {
        # A grouped (video) index, format version 2: frames of two reported videos.
        "id": "vpdq-grouped",
        "banding": {"kind": "vpdq"},
        "grouped": True,
        "key_seed": "04" * 32,
        "key_info": "blindmatch golden",
        "epoch": 3,
        "tag_bytes": 4,
        "handle_bytes": 16,
        "randomness": "blindmatch golden randomness vpdq-grouped",
        "references": [
            {"report_id": "V1", "hash": _sha256("golden vpdq V1 frame 1")},
            {"report_id": "V1", "hash": _sha256("golden vpdq V1 frame 2")},
            {"report_id": "V1", "hash": _sha256("golden vpdq V1 frame 3")},
            {"report_id": "V2", "hash": _sha256("golden vpdq V2 frame 1")},
            {"report_id": "V2", "hash": _sha256("golden vpdq V2 frame 2")},
        ],
        "canaries": [_sha256("golden vpdq canary")],
    },
]

VPDQ_BANDING = Banding(
    signal="vpdq",
    hash_bits=256,
    k=32,
    count=384,
    threshold=2,
    seed=b"blindmatch/v1/vpdq-bands/seed-0",
)
"""The vpdq signal type's banding (``VpdqSignal.banding``; a test checks they agree)."""


def banding_of(case: dict[str, object]) -> Banding:
    """The banding a case names."""
    spec = case["banding"]
    assert isinstance(spec, dict)
    if spec["kind"] == "exact":
        return exact_banding(str(spec["signal"]), int(spec["hash_bits"]))
    if spec["kind"] == "vpdq":
        return VPDQ_BANDING
    if spec["seed"] == "default":
        return pdq_banding(int(spec["count"]))
    return pdq_banding(int(spec["count"]), bytes.fromhex(str(spec["seed"])))


def build_case(case: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    """Build a case's index bytes (inline, one process) and its handle -> report id map."""
    banding = banding_of(case)
    key = SecretKey.derive(
        bytes.fromhex(str(case["key_seed"])),
        str(case["key_info"]).encode(),
        mode=Mode.VOPRF,
        epoch=int(str(case["epoch"])),
    )
    references_spec = case["references"]
    canaries_spec = case["canaries"]
    assert isinstance(references_spec, list)
    assert isinstance(canaries_spec, list)
    references = [
        Reference(str(r["report_id"]), banding.signal, bytes.fromhex(str(r["hash"])))
        for r in references_spec
    ]
    built = build_index(
        key,
        banding,
        references,
        canaries=[bytes.fromhex(str(c)) for c in canaries_spec],
        tag_bytes=int(str(case["tag_bytes"])),
        handle_bytes=int(str(case["handle_bytes"])),
        processes=1,
        random_bytes=ShakeStream(str(case["randomness"])),
        grouped=bool(case.get("grouped", False)),
    )
    return built.to_bytes(), {h.hex(): rid for h, rid in built.handles.items()}


def _band_vectors() -> list[dict[str, object]]:
    cases = []
    specs = [
        ("pdq-384-default", pdq_banding(), _sha256("bands pdq 384")),
        ("pdq-512-seed", pdq_banding(512, b"another public seed"), _sha256("bands pdq 512")),
        ("sha256-exact", exact_banding("sha256", 256), _sha256("bands sha256")),
        ("md5-exact", exact_banding("md5", 128), _md5("bands md5")),
        (
            "odd-200-k13",
            Banding(signal="odd", hash_bits=200, k=13, count=6, threshold=2, seed=b"odd"),
            _sha256("bands odd")[:50],
        ),
    ]
    for name, banding, hash_hex in specs:
        inputs = banding.band_inputs(bytes.fromhex(hash_hex))
        cases.append(
            {
                "id": name,
                "signal": banding.signal,
                "hash_bits": banding.hash_bits,
                "k": banding.k,
                "count": banding.count,
                "threshold": banding.threshold,
                "seed": banding.seed.hex(),
                "first_positions": [list(b) for b in banding.positions()[:3]],
                "hash": hash_hex,
                "first_inputs": [i.hex() for i in inputs[:3]],
            }
        )
    return cases


def main() -> int:
    """Write bands.json, cases.json and the golden index files."""
    bands = {"note": "generated by generate.py; see README.md", "cases": _band_vectors()}
    (HERE / "bands.json").write_text(json.dumps(bands, indent=1) + "\n")
    records = []
    for case in CASES:
        data, handles = build_case(case)
        name = f"{case['id']}.bmidx"
        (HERE / name).write_bytes(data)
        record = dict(case)
        record["file"] = name
        record["file_sha256"] = hashlib.sha256(data).hexdigest()
        record["handles"] = handles
        records.append(record)
    cases = {"note": "generated by generate.py; see README.md", "cases": records}
    (HERE / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
