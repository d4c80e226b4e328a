/* Bump allocator with an embedded first block; see arena.h. */
#include "base/arena.h"

#include <stdlib.h>

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

void tg_arena_init(tg_arena *a)
{
    a->head = NULL;
    a->used = 0;
}

void tg_arena_release(tg_arena *a)
{
    tg_arena_block *b = a->head;
    while (b) {
        tg_arena_block *next = b->next;
        free(b);
        b = next;
    }
    tg_arena_init(a);
}

void *tg_arena_alloc(tg_arena *a, size_t n)
{
    n = ALIGN16(n ? n : 1);
    if (!a->head && n <= sizeof a->first - a->used) {
        void *p = a->first + a->used;
        a->used += n;
        return p;
    }
    if (a->head && n <= a->head->size - a->head->used) {
        void *p = a->head->data + a->head->used;
        a->head->used += n;
        return p;
    }
    size_t size = n > 8192 ? n : 8192;
    tg_arena_block *b = malloc(sizeof *b + size);
    if (!b) return NULL;
    b->next = a->head;
    b->size = size;
    b->used = n;
    a->head = b;
    return b->data;
}

tg_str tg_arena_dup(tg_arena *a, tg_str s)
{
    char *p = tg_arena_alloc(a, s.n + 1);
    if (!p) return TG_STR_NULL;
    if (s.n) memcpy(p, s.p, s.n);
    p[s.n] = '\0';
    return (tg_str){p, s.n};
}
