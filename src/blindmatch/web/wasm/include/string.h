/* The part of <string.h> the PDQ core uses, for its WebAssembly build (no libc there). */
#ifndef BLINDMATCH_WASM_STRING_H
#define BLINDMATCH_WASM_STRING_H
#include <stddef.h>
void *memset(void *dst, int value, size_t count);
void *memcpy(void *restrict dst, const void *restrict src, size_t count);
#endif
