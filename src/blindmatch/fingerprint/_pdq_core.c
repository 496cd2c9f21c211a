/* The PDQ core's downsampling (luma, Jarosz box filter, 64x64 decimation) and DCT in C99,
 * bit-identical to the reference C++ core (facebook/ThreatExchange pdq/cpp).
 *
 * Theory of operation
 * -------------------
 * PDQ's last bits are decided by float32 rounding, so every float operation below is the
 * reference's, in the reference's order; see blindmatch/fingerprint/pdq.py. The speed comes
 * from the layout, not from reassociation: the reference's running sums are sequential
 * *along* a row or column but independent *across* rows or columns, so a pass advances many
 * independent sums one step at a time, an inner loop over contiguous lanes that the compiler
 * turns into SIMD adds (each lane still rounds exactly as the scalar reference does).
 *
 * The image is kept transposed (W x H): a row pass (along W) then runs down axis 0 with one
 * lane per image row, straight from memory; a column pass (along H) copies strips of LANES
 * rows into a small transposed buffer first. The last row pass divides out only the 64
 * sampled columns, and the last column pass runs on those only. This is the algorithm of
 * the numba backend this extension replaced, written once more in C.
 *
 * It MUST be compiled without -ffast-math and with -ffp-contract=off (pyproject.toml):
 * a fused multiply-add in the DCT, or a reassociated sum, moves hashes by a bit. The pragma
 * below says the same to clang (e.g. for WebAssembly); gcc ignores it and needs the flag.
 * No Python API here: _pdq_cext.c is the binding.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__linux__)
#define _DEFAULT_SOURCE /* posix_memalign, madvise */
#endif

#include "_pdq_core.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Rows per strip of a column pass: two 128-bit or one 256-bit vector of float32. */
#define LANES 8

/* Rows per strip of the luma conversion: its transposed stores then fill whole 64-byte
 * cache lines. */
#define LUMA_LANES 16

/* A whole-image buffer. The transposes touch one image column per store, each on another
 * 4 KiB page for a photo-sized image, so on Linux the large buffers ask for transparent huge
 * pages (as numpy does for its arrays): twice as fast on a 12-megapixel image. free() it. */
static void *image_alloc(size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const size_t huge = (size_t)2 << 20;
    if (bytes >= 2 * huge) {
        void *p = NULL;
        if (posix_memalign(&p, huge, bytes) != 0) return NULL;
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice only: fine if refused */
        return p;
    }
#endif
    return malloc(bytes);
}

/* The reference box filter along axis 0 of src (length x lanes), once per lane.
 *
 * dst[o] is written only where need[o]; the running sums still pass every row. s is
 * scratch of `lanes` floats. Phases as in the reference: fill the left half of the first
 * window; grow to the full width with one output per new sample; slide (add the entering
 * sample, then subtract the leaving one: two roundings); shrink at the far edge. */
static void box_lanes(const float *restrict src, float *restrict dst, size_t length,
                      size_t lanes, size_t window, const unsigned char *restrict need,
                      float *restrict s) {
    size_t half = (window + 2) / 2;
    size_t enter = 0, leave = 0, out = 0, count = 0, step, n;
    float c;
    for (n = 0; n < lanes; n++) s[n] = 0.0f;
    for (step = 0; step + 1 < half; step++) {
        const float *restrict a = src + enter * lanes;
        for (n = 0; n < lanes; n++) s[n] += a[n];
        enter++;
        count++;
    }
    for (step = 0; step < window - half + 1; step++) {
        const float *restrict a = src + enter * lanes;
        for (n = 0; n < lanes; n++) s[n] += a[n];
        enter++;
        count++;
        if (need[out]) {
            float *restrict d = dst + out * lanes;
            c = (float)count;
            for (n = 0; n < lanes; n++) d[n] = s[n] / c;
        }
        out++;
    }
    c = (float)count;
    for (step = 0; step < length - window; step++) {
        const float *restrict a = src + enter * lanes;
        const float *restrict b = src + leave * lanes;
        for (n = 0; n < lanes; n++) {
            s[n] += a[n];
            s[n] -= b[n];
        }
        enter++;
        leave++;
        if (need[out]) {
            float *restrict d = dst + out * lanes;
            for (n = 0; n < lanes; n++) d[n] = s[n] / c;
        }
        out++;
    }
    for (step = 0; step + 1 < half; step++) {
        const float *restrict b = src + leave * lanes;
        for (n = 0; n < lanes; n++) s[n] -= b[n];
        leave++;
        count--;
        if (need[out]) {
            float *restrict d = dst + out * lanes;
            c = (float)count;
            for (n = 0; n < lanes; n++) d[n] = s[n] / c;
        }
        out++;
    }
}

/* The box filter along axis 1 of src (rows x cols), LANES rows at a time through a
 * transposed strip (cols x LANES). strip and strip_out hold cols * LANES floats, s LANES. */
static void box_along_axis1(const float *restrict src, float *restrict dst, size_t rows,
                            size_t cols, size_t window, const unsigned char *restrict need,
                            float *restrict strip, float *restrict strip_out,
                            float *restrict s) {
    size_t first, r, c;
    for (first = 0; first < rows; first += LANES) {
        size_t count = rows - first < LANES ? rows - first : LANES;
        if (count == LANES) {
            for (c = 0; c < cols; c++)
                for (r = 0; r < LANES; r++) strip[c * LANES + r] = src[(first + r) * cols + c];
        } else {
            for (r = 0; r < count; r++)
                for (c = 0; c < cols; c++) strip[c * LANES + r] = src[(first + r) * cols + c];
        }
        box_lanes(strip, strip_out, cols, LANES, window, need, s);
        if (count == LANES) {
            for (c = 0; c < cols; c++)
                for (r = 0; r < LANES; r++) dst[(first + r) * cols + c] = strip_out[c * LANES + r];
        } else {
            for (r = 0; r < count; r++)
                for (c = 0; c < cols; c++) dst[(first + r) * cols + c] = strip_out[c * LANES + r];
        }
    }
}

static int bad_geometry(size_t rows, size_t cols, size_t row_window, size_t col_window,
                        const ptrdiff_t *row_idx, const ptrdiff_t *col_idx, int passes) {
    size_t i;
    if (rows == 0 || cols == 0 || passes < 1) return 1;
    if (rows > SIZE_MAX / sizeof(float) / cols / PDQ_SAMPLES) return 1; /* sizes overflow */
    if (row_window < 1 || row_window > cols || col_window < 1 || col_window > rows) return 1;
    for (i = 0; i < PDQ_SAMPLES; i++) {
        if (row_idx[i] < 0 || (size_t)row_idx[i] >= rows) return 1;
        if (col_idx[i] < 0 || (size_t)col_idx[i] >= cols) return 1;
    }
    return 0;
}

/* The Jarosz passes and the decimation on the transposed image image_t (cols x rows),
 * which is overwritten. */
static int filter_transposed(float *image_t, size_t rows, size_t cols, size_t row_window,
                             size_t col_window, const ptrdiff_t *row_idx,
                             const ptrdiff_t *col_idx, int passes, float *out) {
    size_t longest = rows > cols ? rows : cols, i, j, r;
    int pass, status = PDQ_NO_MEMORY;
    float *other = image_alloc(rows * cols * sizeof(float));
    float *s = malloc((longest > PDQ_SAMPLES ? longest : PDQ_SAMPLES) * sizeof(float));
    float *strip = calloc(rows * LANES, sizeof(float));
    float *strip_out = calloc(rows * LANES, sizeof(float));
    float *narrow = malloc(rows * PDQ_SAMPLES * sizeof(float));
    float *narrow_out = malloc(rows * PDQ_SAMPLES * sizeof(float));
    unsigned char *every = malloc(longest);
    unsigned char *need_col = calloc(cols, 1);
    unsigned char *need_row = calloc(rows, 1);
    if (!other || !s || !strip || !strip_out || !narrow || !narrow_out || !every || !need_col ||
        !need_row)
        goto done;
    memset(every, 1, longest);
    for (i = 0; i < PDQ_SAMPLES; i++) {
        need_col[col_idx[i]] = 1;
        need_row[row_idx[i]] = 1;
    }
    for (pass = 0; pass + 1 < passes; pass++) {
        /* Along W: one lane per image row. Along H: transposed strips of image rows. */
        box_lanes(image_t, other, cols, rows, row_window, every, s);
        box_along_axis1(other, image_t, cols, rows, col_window, every, strip, strip_out, s);
    }
    box_lanes(image_t, other, cols, rows, row_window, need_col, s);
    /* The last column pass on the sampled columns only: (H, 64), one lane per column. */
    for (r = 0; r < rows; r++)
        for (j = 0; j < PDQ_SAMPLES; j++)
            narrow[r * PDQ_SAMPLES + j] = other[(size_t)col_idx[j] * rows + r];
    box_lanes(narrow, narrow_out, rows, PDQ_SAMPLES, col_window, need_row, s);
    for (i = 0; i < PDQ_SAMPLES; i++)
        memcpy(out + i * PDQ_SAMPLES, narrow_out + (size_t)row_idx[i] * PDQ_SAMPLES,
               PDQ_SAMPLES * sizeof(float));
    status = PDQ_OK;
done:
    free(other);
    free(s);
    free(strip);
    free(strip_out);
    free(narrow);
    free(narrow_out);
    free(every);
    free(need_col);
    free(need_row);
    return status;
}

int pdq_samples_from_rgb(const uint8_t *rgb, size_t rows, size_t cols, size_t channels,
                         size_t row_window, size_t col_window, const ptrdiff_t *row_idx,
                         const ptrdiff_t *col_idx, int passes, float *out) {
    /* value * coefficient in double for every byte value: the products the pdqhash binding
     * computes before rounding the luma once to float32, looked up instead of multiplied. */
    double red[256], green[256], blue[256];
    size_t first, r, c;
    int status;
    float *luma_t, *line;
    if (bad_geometry(rows, cols, row_window, col_window, row_idx, col_idx, passes) ||
        (channels != 3 && channels != 4))
        return PDQ_BAD_ARGUMENT;
    for (r = 0; r < 256; r++) {
        red[r] = (double)r * 0.299;
        green[r] = (double)r * 0.587;
        blue[r] = (double)r * 0.114;
    }
    luma_t = image_alloc(rows * cols * sizeof(float));
    line = malloc(LUMA_LANES * cols * sizeof(float));
    if (!luma_t || !line) {
        free(luma_t);
        free(line);
        return PDQ_NO_MEMORY;
    }
    /* luma_t[c][r] = (0.299 R + 0.587 G) + 0.114 B of pixel (r, c), in double, rounded once;
     * a strip of LUMA_LANES rows at a time into `line`, then stored transposed. */
    for (first = 0; first < rows; first += LUMA_LANES) {
        size_t count = rows - first < LUMA_LANES ? rows - first : LUMA_LANES;
        for (r = 0; r < count; r++) {
            const uint8_t *p = rgb + (first + r) * cols * channels;
            float *l = line + r * cols;
            for (c = 0; c < cols; c++, p += channels)
                l[c] = (float)((red[p[0]] + green[p[1]]) + blue[p[2]]);
        }
        for (c = 0; c < cols; c++)
            for (r = 0; r < count; r++) luma_t[c * rows + first + r] = line[r * cols + c];
    }
    free(line);
    status = filter_transposed(luma_t, rows, cols, row_window, col_window, row_idx, col_idx,
                               passes, out);
    free(luma_t);
    return status;
}

int pdq_samples_from_luma(const float *luma, size_t rows, size_t cols, size_t row_window,
                          size_t col_window, const ptrdiff_t *row_idx, const ptrdiff_t *col_idx,
                          int passes, float *out) {
    size_t first, r, c;
    int status;
    float *luma_t;
    if (bad_geometry(rows, cols, row_window, col_window, row_idx, col_idx, passes))
        return PDQ_BAD_ARGUMENT;
    luma_t = image_alloc(rows * cols * sizeof(float));
    if (!luma_t) return PDQ_NO_MEMORY;
    for (first = 0; first < rows; first += LUMA_LANES) {
        size_t count = rows - first < LUMA_LANES ? rows - first : LUMA_LANES;
        for (c = 0; c < cols; c++)
            for (r = 0; r < count; r++) luma_t[c * rows + first + r] = luma[(first + r) * cols + c];
    }
    status = filter_transposed(luma_t, rows, cols, row_window, col_window, row_idx, col_idx,
                               passes, out);
    free(luma_t);
    return status;
}

void pdq_dct16(const float *samples, const float *matrix, float *block) {
    /* T = D @ A, then block = T @ D^T; each output sums its products from 0 in order
     * k = 0..63, vectorised across the independent outputs j. */
    float t[PDQ_DCT_ROWS * PDQ_SAMPLES], dt[PDQ_SAMPLES * PDQ_DCT_ROWS];
    size_t i, j, k;
    for (i = 0; i < PDQ_DCT_ROWS; i++) {
        float *restrict acc = t + i * PDQ_SAMPLES;
        for (j = 0; j < PDQ_SAMPLES; j++) acc[j] = 0.0f;
        for (k = 0; k < PDQ_SAMPLES; k++) {
            float m = matrix[i * PDQ_SAMPLES + k];
            const float *restrict a = samples + k * PDQ_SAMPLES;
            for (j = 0; j < PDQ_SAMPLES; j++) acc[j] += m * a[j];
        }
    }
    for (k = 0; k < PDQ_SAMPLES; k++)
        for (j = 0; j < PDQ_DCT_ROWS; j++) dt[k * PDQ_DCT_ROWS + j] = matrix[j * PDQ_SAMPLES + k];
    for (i = 0; i < PDQ_DCT_ROWS; i++) {
        float *restrict acc = block + i * PDQ_DCT_ROWS;
        for (j = 0; j < PDQ_DCT_ROWS; j++) acc[j] = 0.0f;
        for (k = 0; k < PDQ_SAMPLES; k++) {
            float v = t[i * PDQ_SAMPLES + k];
            const float *restrict d = dt + k * PDQ_DCT_ROWS;
            for (j = 0; j < PDQ_DCT_ROWS; j++) acc[j] += v * d[j];
        }
    }
}
