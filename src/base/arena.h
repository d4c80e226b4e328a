/* Per-request memory.
 *
 * A request allocates everything it needs that lives as long as it does from
 * its arena and releases the arena once, when it ends: no scattered frees of
 * request fields. The first block is embedded so that a typical request
 * makes no heap allocation for its arena at all. Allocation never fails
 * silently: tg_arena_alloc returns NULL only when malloc does. */
#ifndef TG_BASE_ARENA_H
#define TG_BASE_ARENA_H

#include "base/str.h"

#include <stddef.h>

typedef struct tg_arena_block {
    struct tg_arena_block *next;
    size_t used, size;
    _Alignas(16) char data[];
} tg_arena_block;

typedef struct {
    tg_arena_block *head; /* most recent heap block, or NULL */
    size_t used;          /* bytes used of `first` */
    _Alignas(16) char first[2048];
} tg_arena;

void tg_arena_init(tg_arena *a);
/* Frees every heap block; the arena is ready for reuse. */
void tg_arena_release(tg_arena *a);
/* 16-byte aligned; NULL only on out-of-memory. */
void *tg_arena_alloc(tg_arena *a, size_t n);
/* A copy of s in the arena, NUL-terminated; .p is NULL on out-of-memory. */
tg_str tg_arena_dup(tg_arena *a, tg_str s);

#endif
