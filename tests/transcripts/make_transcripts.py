"""Write tests/transcripts/session.json: the golden transcript of tests/session_scenario.py.

Run from the repository root: ``.venv/bin/python tests/transcripts/make_transcripts.py``. Only when
the wire format or a session's order of random draws changes on purpose (say so in the
CHANGELOG): the file pins both.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from session_scenario import run  # noqa: E402


def transcript() -> dict[str, object]:
    """The scenario's messages, matches and both parties' counters, JSON-ready."""
    pair, built, _ = run()
    found = pair.platform.stats
    messages = []
    for entry in pair.transcript:
        messages.append(
            {
                "sender": entry.sender,
                "sha256": hashlib.sha256(entry.data).hexdigest(),
                "hex": entry.data.hex(),
            }
        )
    return {
        "scenario": "tests/session_scenario.py",
        "index_digests": {s: b.header.digest.hex() for s, b in sorted(built.items())},
        "messages": messages,
        "uploads_matched": found.uploads_matched,
        "matches": found.matches,
        "elements_sent": found.elements_sent,
        "audits_verified": found.audits_verified,
    }


if __name__ == "__main__":
    (HERE / "session.json").write_text(json.dumps(transcript(), indent=1) + "\n")
