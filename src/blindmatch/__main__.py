"""``python -m blindmatch`` runs the ``blindmatch`` command."""

from __future__ import annotations

import sys

from blindmatch.cli import main

if __name__ == "__main__":
    sys.exit(main())
