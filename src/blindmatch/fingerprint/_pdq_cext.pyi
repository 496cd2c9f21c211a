"""Type stub of the C extension built from ``_pdq_cext.c`` (see :mod:`._pdq_c`)."""

from typing_extensions import Buffer

def samples_from_rgb(
    rgb: Buffer,
    rows: int,
    cols: int,
    channels: int,
    row_window: int,
    col_window: int,
    row_idx: Buffer,
    col_idx: Buffer,
    passes: int,
    out: Buffer,
    /,
) -> None: ...
def samples_from_luma(
    luma: Buffer,
    rows: int,
    cols: int,
    row_window: int,
    col_window: int,
    row_idx: Buffer,
    col_idx: Buffer,
    passes: int,
    out: Buffer,
    /,
) -> None: ...
def dct16(samples: Buffer, matrix: Buffer, block: Buffer, /) -> None: ...
