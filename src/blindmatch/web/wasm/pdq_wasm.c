/* The PDQ core as a WebAssembly module for the reporting page: an RGB(A) image in linear
 * memory to its 256-bit hash and quality, the same bits as blindmatch.fingerprint.pdq.
 *
 * Theory of operation
 * -------------------
 * The downsampling and the DCT are _pdq_core.c itself, compiled by clang for wasm32 with
 * FP_CONTRACT off: WebAssembly's f32 arithmetic (scalar and SIMD) is IEEE 754 binary32 with
 * round-to-nearest and subnormals, so every operation rounds as in the Python extension.
 * The rest of pdq.py is repeated here in a few lines that use no transcendental function:
 *   - the geometry: window ceil(side / 128), sample i at (int)((i + 0.5) * side / 64) in
 *     double;
 *   - quality from the 64x64 samples, (diff * 100) / 255 in float32, truncated;
 *   - the threshold, the lower median sorted(B)[127], and the byte order of the hash;
 *   - the DCT matrix is not computed (the browser's Math.cos and a libm's cos need not
 *     agree in the last bit): it is pdq_dct_table.h, the float32 table pdq.py builds,
 *     written by scripts/build-wasm and checked against pdq.py by the tests.
 * There is no libc: include/ declares the few functions the core calls, defined below over
 * a bump allocator. free() does nothing; the page calls pdq_reset() after each image, so
 * a hash needs about 3 float32 planes of the image plus the input at most.
 *
 * Exports: pdq_alloc(bytes) -> pointer for the input; pdq_hash(rgb, rows, cols, channels,
 * out) for an image and pdq_hash_frame(...) for a video frame (vPDQ's float32 luma), each
 * -> PDQ_OK or an error code (out: 32 hash bytes, big-endian as PdqHash, then the quality
 * in one byte); pdq_reset().
 */
#pragma STDC FP_CONTRACT OFF

#include <stddef.h>
#include <stdint.h>

#include "../../fingerprint/_pdq_core.h"
#include "pdq_dct_table.h"

#define WASM_EXPORT(name) __attribute__((export_name(#name)))
#define PAGE 65536u

extern unsigned char __heap_base;
static uintptr_t heap_top = 0;

void *malloc(size_t size) {
    uintptr_t start, end;
    size_t have;
    if (heap_top == 0) heap_top = (uintptr_t)&__heap_base;
    start = (heap_top + 15u) & ~(uintptr_t)15u;
    if (size > SIZE_MAX - start) return NULL;
    end = start + size;
    have = __builtin_wasm_memory_size(0) * PAGE;
    if (end > have) {
        size_t pages = (end - have + PAGE - 1) / PAGE;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
    }
    heap_top = end;
    return (void *)start;
}

void *memset(void *dst, int value, size_t count) {
    unsigned char *d = dst;
    while (count--) *d++ = (unsigned char)value;
    return dst;
}

void *memcpy(void *restrict dst, const void *restrict src, size_t count) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (count--) *d++ = *s++;
    return dst;
}

void *calloc(size_t count, size_t size) {
    void *p;
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    p = malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void free(void *ptr) { (void)ptr; }

WASM_EXPORT(pdq_alloc) void *pdq_alloc(size_t bytes) { return malloc(bytes); }

WASM_EXPORT(pdq_reset) void pdq_reset(void) { heap_top = (uintptr_t)&__heap_base; }

static size_t window_of(size_t side) { return (side + 2 * PDQ_SAMPLES - 1) / (2 * PDQ_SAMPLES); }

static void indices_of(size_t side, ptrdiff_t *out) {
    int i;
    for (i = 0; i < PDQ_SAMPLES; i++) out[i] = (ptrdiff_t)(((i + 0.5) * (double)side) / PDQ_SAMPLES);
}

static int quality_of(const float *a) {
    long total = 0;
    int i, j, step;
    for (i = 0; i < PDQ_SAMPLES; i++) {
        for (j = 0; j < PDQ_SAMPLES; j++) {
            if (i + 1 < PDQ_SAMPLES) {
                float d = a[i * PDQ_SAMPLES + j] - a[(i + 1) * PDQ_SAMPLES + j];
                step = (int)((d * 100.0f) / 255.0f);
                total += step < 0 ? -step : step;
            }
            if (j + 1 < PDQ_SAMPLES) {
                float d = a[i * PDQ_SAMPLES + j] - a[i * PDQ_SAMPLES + j + 1];
                step = (int)((d * 100.0f) / 255.0f);
                total += step < 0 ? -step : step;
            }
        }
    }
    total /= 90;
    return total > 100 ? 100 : (int)total;
}

/* Quality, DCT, median threshold and byte order from the 64x64 samples, into out. */
static void finish(const float *samples, uint8_t *out) {
    float block[256], sorted[256], median;
    int i, j;
    int quality = quality_of(samples);
    pdq_dct16(samples, PDQ_DCT_MATRIX, block);
    /* sorted(block)[127], by insertion sort (no NaN can occur). */
    for (i = 0; i < 256; i++) {
        float v = block[i];
        for (j = i; j > 0 && sorted[j - 1] > v; j--) sorted[j] = sorted[j - 1];
        sorted[j] = v;
    }
    median = sorted[127];
    /* Bit k (= 16 i + j) is block[k] > median; byte 0 holds bits 255..248, MSB first. */
    for (i = 0; i < 256; i++)
        if (block[i] > median) out[31 - i / 8] |= (uint8_t)(1u << (i % 8));
    out[32] = (uint8_t)quality;
}

/* PDQ of an image (pdq.pdq_from_rgb): luma in double, rounded once. */
WASM_EXPORT(pdq_hash)
int pdq_hash(const uint8_t *rgb, size_t rows, size_t cols, size_t channels, uint8_t *out) {
    float samples[PDQ_SAMPLES * PDQ_SAMPLES];
    ptrdiff_t row_idx[PDQ_SAMPLES], col_idx[PDQ_SAMPLES];
    int status, i;
    for (i = 0; i < 36; i++) out[i] = 0;
    if (channels != 3 && channels != 4) return PDQ_BAD_ARGUMENT;
    if (rows < 5 || cols < 5) return PDQ_OK; /* all zeros, quality 0, as the reference */
    indices_of(rows, row_idx);
    indices_of(cols, col_idx);
    status = pdq_samples_from_rgb(rgb, rows, cols, channels, window_of(cols), window_of(rows),
                                  row_idx, col_idx, 2, samples);
    if (status != PDQ_OK) return status;
    finish(samples, out);
    return PDQ_OK;
}

/* PDQ of a video frame (video.py: pdq_from_luma(luma_from_rgb(rgb))): the luma of vPDQ,
 * float32 0.299 R + 0.587 G + 0.114 B summed left to right. */
WASM_EXPORT(pdq_hash_frame)
int pdq_hash_frame(const uint8_t *rgb, size_t rows, size_t cols, size_t channels, uint8_t *out) {
    float samples[PDQ_SAMPLES * PDQ_SAMPLES];
    ptrdiff_t row_idx[PDQ_SAMPLES], col_idx[PDQ_SAMPLES];
    float *luma;
    size_t n, count;
    int status, i;
    for (i = 0; i < 36; i++) out[i] = 0;
    if (channels != 3 && channels != 4) return PDQ_BAD_ARGUMENT;
    if (rows < 5 || cols < 5) return PDQ_OK;
    if (rows > SIZE_MAX / sizeof(float) / cols) return PDQ_BAD_ARGUMENT;
    count = rows * cols;
    luma = malloc(count * sizeof(float));
    if (!luma) return PDQ_NO_MEMORY;
    for (n = 0; n < count; n++) {
        const uint8_t *p = rgb + n * channels;
        float l = (float)p[0] * 0.299f;
        l += (float)p[1] * 0.587f;
        l += (float)p[2] * 0.114f;
        luma[n] = l;
    }
    indices_of(rows, row_idx);
    indices_of(cols, col_idx);
    status = pdq_samples_from_luma(luma, rows, cols, window_of(cols), window_of(rows), row_idx,
                                   col_idx, 2, samples);
    if (status != PDQ_OK) return status;
    finish(samples, out);
    return PDQ_OK;
}
