/* The PDQ core's downsampling and DCT in plain C99: no Python, no allocation outside these
 * calls, no global state, so the same file compiles into the Python extension and (later)
 * to WebAssembly. See _pdq_core.c for the theory of operation. */
#ifndef BLINDMATCH_PDQ_CORE_H
#define BLINDMATCH_PDQ_CORE_H

#include <stddef.h>
#include <stdint.h>

#define PDQ_SAMPLES 64
#define PDQ_DCT_ROWS 16

/* Return codes. */
#define PDQ_OK 0
#define PDQ_NO_MEMORY (-1)    /* a working buffer could not be allocated */
#define PDQ_BAD_ARGUMENT (-2) /* a size, window, index or channel count out of range */

/* Luma of an RGB(A) image, the Jarosz passes and the 64x64 decimation.
 *
 * rgb: rows x cols x channels bytes, C order (channels 3 or 4; a 4th is ignored).
 * row_window / col_window: box widths along a row / along a column.
 * row_idx / col_idx: the 64 sampled rows / columns.
 * out: 64 x 64 floats, out[i * 64 + j] = sample at (row_idx[i], col_idx[j]).
 * Returns PDQ_OK, PDQ_NO_MEMORY or PDQ_BAD_ARGUMENT (windows must be 1..the side they run
 * along, indices inside the image, passes >= 1). */
int pdq_samples_from_rgb(const uint8_t *rgb, size_t rows, size_t cols, size_t channels,
                         size_t row_window, size_t col_window, const ptrdiff_t *row_idx,
                         const ptrdiff_t *col_idx, int passes, float *out);

/* The same from a rows x cols float32 luma plane, C order. */
int pdq_samples_from_luma(const float *luma, size_t rows, size_t cols, size_t row_window,
                          size_t col_window, const ptrdiff_t *row_idx, const ptrdiff_t *col_idx,
                          int passes, float *out);

/* block (16 x 16) = (D @ A) @ D^T for the 16 x 64 matrix D and the 64 x 64 samples A, each
 * dot product summed from 0 in order k = 0..63 in float32. */
void pdq_dct16(const float *samples, const float *matrix, float *block);

#endif
