"""Type stub of the C extension built from ``_pdq_cext.c`` (see :mod:`._pdq_c`)."""

from typing import Any

import numpy as np
from typing_extensions import Buffer

# Any C-contiguous buffer: numpy arrays are buffers, but numpy's stubs say so for 3.12+ only.
_Buffer = Buffer | np.ndarray[Any, Any]

def samples_from_rgb(
    rgb: _Buffer,
    rows: int,
    cols: int,
    channels: int,
    row_window: int,
    col_window: int,
    row_idx: _Buffer,
    col_idx: _Buffer,
    passes: int,
    out: _Buffer,
    /,
) -> None: ...
def samples_from_luma(
    luma: _Buffer,
    rows: int,
    cols: int,
    row_window: int,
    col_window: int,
    row_idx: _Buffer,
    col_idx: _Buffer,
    passes: int,
    out: _Buffer,
    /,
) -> None: ...
def dct16(samples: _Buffer, matrix: _Buffer, block: _Buffer, /) -> None: ...
