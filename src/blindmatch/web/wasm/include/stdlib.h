/* The part of <stdlib.h> the PDQ core uses, for its WebAssembly build (no libc there):
 * a bump allocator in pdq_wasm.c. */
#ifndef BLINDMATCH_WASM_STDLIB_H
#define BLINDMATCH_WASM_STDLIB_H
#include <stddef.h>
void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void free(void *ptr);
#endif
