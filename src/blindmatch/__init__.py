"""blindmatch: privacy-preserving matching of reported images and videos.

Subpackages, in the direction imports run (a test enforces it)::

    cli -> simulate -> protocols -> {psi, fingerprint} -> errors

- :mod:`blindmatch.fingerprint` turns images and videos into hashes (PDQ, vPDQ, MD5,
  SHA-256) on the device that holds them.
- :mod:`blindmatch.psi` is the cryptography: ristretto255, RFC 9497 (V/P)OPRF, the index.
- :mod:`blindmatch.protocols` holds wire messages and sans-IO client/server sessions.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0.dev0"
