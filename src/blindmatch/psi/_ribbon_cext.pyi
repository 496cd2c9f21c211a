"""Type stub of the C extension built from ``_ribbon_cext.c`` (see :mod:`._ribbon`)."""

from typing import Any

import numpy as np
from typing_extensions import Buffer

_Buffer = Buffer | np.ndarray[Any, Any]

def solve(
    starts: _Buffer,
    low: _Buffer,
    high: _Buffer,
    fingerprints: _Buffer,
    slots: int,
    out: _Buffer,
) -> bool: ...
