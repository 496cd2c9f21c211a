"""Benchmark (web): PDQ distance between the reporting page's in-browser pipeline and the
Python ``default`` pipeline, on the same files.

What is measured
----------------
Each file is decoded by headless chromium (the page's decode.js: createImageBitmap with no
colour conversion, EXIF orientation applied, read back from a canvas) and hashed by the
page's pdq.wasm; and decoded by the Python front end (Pillow) and hashed by
``pdq_from_rgb``. Reported per group: files, how many decoded to the very same RGB pixels,
PDQ Hamming distance mean/median/max, the largest quality difference. Files: the 43
reference vector images and generated photo-like JPEG (quality 90, 60, EXIF orientations
3/6/8), PNG, WebP (lossy, lossless) and translucent PNG files of six sizes.

Target (issue 12): far below the match threshold 31; tests/test_web_decode.py asserts
distance 0 on opaque files and <= 10 on translucent ones (16-bit PNG excepted, see
docs/web.md). It needs Debian's chromium and chromium-driver.

The browser harness is test code (tests/web_harness.py; selenium is a test dependency),
so this module puts tests/ on the import path.

Run: ``python -m benchmarks web_decode``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

__all__ = ["main"]

NAME = "web_decode"
RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import web_harness  # noqa: E402 - after the path above


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table, write ``results/web_decode.{json,md}``."""
    parser = argparse.ArgumentParser(prog="bench_web_decode", description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        (root / "data").mkdir()
        (root / "generated").mkdir()
        files = web_harness.reference_images() + web_harness.generated_images(root / "generated")
        with (
            web_harness.page_server(root / "data") as server,
            web_harness.chromium(root / "profile") as driver,
        ):
            driver.get(server.url)
            results = web_harness.compare_decoding(driver, server, files)
            version = f"chromium {driver.capabilities.get('browserVersion', '?')}"
    summary = web_harness.summarize(results)
    table = web_harness.summary_markdown(summary, version)
    print(table)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        record = {"browser": version, "groups": summary}
        (RESULTS / f"{NAME}.json").write_text(json.dumps(record, indent=1) + "\n", "utf-8")
        (RESULTS / f"{NAME}.md").write_text(table, "utf-8")
    opaque_ok = all(
        row["distance_max"] == 0
        for group, row in summary.items()
        if group != "reference" and group != "png-translucent"
    )
    return 0 if opaque_ok else 1


if __name__ == "__main__":
    sys.exit(main())
