/* Folding one day of usage into the rollups (sqlite_int.h, Folding).
 *
 * The day's rows are read once and summed in C: every tag string is
 * interned to a small number, so a rollup key is a fixed array of integers
 * that hashes and compares in a few instructions. (The first version
 * summed with SQL GROUP BY; SQLite's sorter over ten text columns cost
 * several microseconds a row, more than the ledger's whole budget.) The
 * sums are then written with the same upserts late records use, in key
 * order, so each rollup b-tree is walked once. */
#include "store/sqlite_int.h"

#include "base/arena.h"
#include "base/hash.h"

#include <stdlib.h>
#include <string.h>

/* Interned positions in a key. Dimension keys use all nine; user keys use
 * app, customer and K_USER. */
enum { K_APP, K_CUST, K_WS, K_FEAT, K_FLOW, K_MODEL, K_OFFER, K_PROV, K_ROUTE, NK_ };
#define K_USER K_WS

typedef struct {
    int64_t bucket;
    uint32_t k[NK_];
} fkey;

typedef struct {
    fkey key;
    tg_measures m;
} fent;

typedef struct {
    fent *e;
    size_t n, cap;
    uint32_t *slots; /* index + 1, 0 empty; 2 * cap of them */
} fmap;

typedef struct {
    tg_arena arena;
    const char **str; /* id -> string */
    size_t *len;
    uint32_t *rank;   /* id -> position in byte order, for sorting keys */
    uint64_t *hash;
    size_t n, cap;
    uint32_t *slots;
} interner;

/* ---- interning ---- */

static int intern_grow(interner *in)
{
    size_t cap = in->cap ? in->cap * 2 : 1024;
    const char **s = realloc(in->str, cap * sizeof *s);
    if (s) in->str = s;
    uint64_t *h = realloc(in->hash, cap * sizeof *h);
    if (h) in->hash = h;
    size_t *len = realloc(in->len, cap * sizeof *len);
    if (len) in->len = len;
    uint32_t *slots = calloc(2 * cap, sizeof *slots);
    if (!s || !h || !len || !slots) return free(slots), TG_ENOMEM;
    for (size_t i = 0; i < in->n; i++) {
        size_t j = in->hash[i] & (2 * cap - 1);
        while (slots[j]) j = (j + 1) & (2 * cap - 1);
        slots[j] = (uint32_t)(i + 1);
    }
    free(in->slots);
    in->slots = slots;
    in->cap = cap;
    return TG_OK;
}

/* The id of s (n bytes), added if new; UINT32_MAX on out-of-memory. */
static uint32_t intern(interner *in, const char *s, size_t n)
{
    if (in->n == in->cap && intern_grow(in)) return UINT32_MAX;
    uint64_t h = tg_hash64(s, n, 0x51ed27);
    size_t mask = 2 * in->cap - 1, j = h & mask;
    for (; in->slots[j]; j = (j + 1) & mask) {
        size_t i = in->slots[j] - 1;
        if (in->hash[i] == h && in->len[i] == n && !memcmp(in->str[i], s, n)) return (uint32_t)i;
    }
    tg_str c = tg_arena_dup(&in->arena, tg_str_make(s, n));
    if (!c.p) return UINT32_MAX;
    in->str[in->n] = c.p;
    in->len[in->n] = n;
    in->hash[in->n] = h;
    in->slots[j] = (uint32_t)++in->n;
    return (uint32_t)(in->n - 1);
}

static int cmp_ids(const void *a, const void *b, void *strs)
{
    const char **s = strs;
    return strcmp(s[*(const uint32_t *)a], s[*(const uint32_t *)b]);
}

static int make_ranks(interner *in)
{
    uint32_t *order = malloc((in->n + 1) * sizeof *order);
    in->rank = malloc((in->n + 1) * sizeof *in->rank);
    if (!order || !in->rank) return free(order), TG_ENOMEM;
    for (size_t i = 0; i < in->n; i++) order[i] = (uint32_t)i;
    qsort_r(order, in->n, sizeof *order, cmp_ids, (void *)in->str);
    for (size_t i = 0; i < in->n; i++) in->rank[order[i]] = (uint32_t)i;
    free(order);
    return TG_OK;
}

/* ---- maps ---- */

static uint64_t key_hash(const fkey *k)
{
    uint64_t h = (uint64_t)k->bucket * 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < NK_; i++) h = (h ^ k->k[i]) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

static int fmap_grow(fmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 4096;
    fent *e = realloc(m->e, cap * sizeof *e);
    if (e) m->e = e;
    uint32_t *slots = calloc(2 * cap, sizeof *slots);
    if (!e || !slots) return free(slots), TG_ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        size_t j = key_hash(&m->e[i].key) & (2 * cap - 1);
        while (slots[j]) j = (j + 1) & (2 * cap - 1);
        slots[j] = (uint32_t)(i + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return TG_OK;
}

static int fmap_add(fmap *m, const fkey *k, const tg_measures *v)
{
    if (m->n == m->cap && fmap_grow(m)) return TG_ENOMEM;
    size_t mask = 2 * m->cap - 1, j = key_hash(k) & mask;
    for (; m->slots[j]; j = (j + 1) & mask) {
        fent *e = &m->e[m->slots[j] - 1];
        if (!memcmp(&e->key, k, sizeof *k)) return tg_measures_add(&e->m, v);
    }
    m->e[m->n] = (fent){*k, *v};
    m->slots[j] = (uint32_t)++m->n;
    return TG_OK;
}

static void fmap_release(fmap *m)
{
    free(m->e);
    free(m->slots);
}

/* ---- reading the day ---- */

typedef struct {
    interner in;
    fmap map[TG_ROLL_COUNT_];
    int64_t day_c, month_c; /* the last record's day and its month */
} fold_ctx;

static uint32_t intern_str(interner *in, const char *s) { return intern(in, s, strlen(s)); }

static int add_row(void *ud, const tg_usage_rec *r)
{
    fold_ctx *f = ud;
    fkey dk = {0}, uk = {0};
    const char *dims[8] = {r->tags.app,      r->tags.customer, r->tags.workspace, r->tags.feature,
                           r->tags.workflow, r->model,         r->offering,       r->provider};
    for (int i = 0; i < 8; i++)
        if ((dk.k[i] = intern_str(&f->in, dims[i])) == UINT32_MAX) return TG_ENOMEM;
    dk.k[K_ROUTE] = r->route;
    uk.k[K_APP] = dk.k[K_APP];
    uk.k[K_CUST] = dk.k[K_CUST];
    if ((uk.k[K_USER] = intern_str(&f->in, r->tags.user)) == UINT32_MAX) return TG_ENOMEM;
    tg_measures m;
    tg_measures_of(r, &m);
    int64_t day = tg_bucket_day(r->t_start_ms);
    if (day != f->day_c) {
        f->day_c = day;
        f->month_c = tg_bucket_month(day);
    }
    const int64_t b[TG_ROLL_COUNT_] = {day, f->month_c, day, f->month_c};
    int rc = TG_OK;
    for (int k = 0; k < TG_ROLL_COUNT_ && !rc; k++) {
        fkey key = k >= TG_ROLL_USER_DAY ? uk : dk;
        key.bucket = b[k];
        rc = fmap_add(&f->map[k], &key, &m);
    }
    return rc;
}

static int read_day(tg_store *s, fold_ctx *f, int64_t from, int64_t to, tg_errmsg *err)
{
    f->day_c = INT64_MIN;
    int rc = tg_sq_each_usage(s, from, to, add_row, f, err);
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "%s: out of memory folding a day", s->path);
    if (rc == TG_EINVAL) tg_errmsg_set(err, "%s: a rollup sum would overflow", s->path);
    return rc;
}

/* ---- writing ---- */

static int cmp_fent(const void *pa, const void *pb, void *rank)
{
    const fent *a = pa, *b = pb;
    const uint32_t *ranks_ = rank;
    if (a->key.bucket != b->key.bucket) return a->key.bucket < b->key.bucket ? -1 : 1;
    for (int i = 0; i < NK_; i++) {
        uint32_t x = i == K_ROUTE ? a->key.k[i] : ranks_[a->key.k[i]];
        uint32_t y = i == K_ROUTE ? b->key.k[i] : ranks_[b->key.k[i]];
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

static void bind_entry(sqlite3_stmt *st, const fold_ctx *f, const fent *e, bool user)
{
    int c = 1;
    sqlite3_bind_int64(st, c++, e->key.bucket);
    int nstr = user ? 3 : 8;
    for (int j = 0; j < nstr; j++) {
        uint32_t id = e->key.k[j];
        sqlite3_bind_text(st, c++, f->in.str[id], (int)f->in.len[id], SQLITE_STATIC);
    }
    if (!user) sqlite3_bind_int(st, c++, (int)e->key.k[K_ROUTE]);
    tg_sq_bind_measures(st, c, &e->m);
}

/* A day's keys are new to the day rollups, so an upsert there is one
 * insert. Most of them are already in the month rollups (a key recurs on
 * many days), where an upsert costs a failed insert and then the update:
 * an UPDATE first, and the upsert only when it changed nothing, made
 * bench/ledger_bench 6% faster. */
static int write_map(tg_store *s, fold_ctx *f, int r, tg_errmsg *err)
{
    fmap *m = &f->map[r];
    bool user = r >= TG_ROLL_USER_DAY;
    bool month = r == TG_ROLL_MONTH || r == TG_ROLL_USER_MONTH;
    if (m->n > 1) qsort_r(m->e, m->n, sizeof *m->e, cmp_fent, f->in.rank);
    int rc = month ? tg_sq_prepare_add(s, r, err) : TG_OK;
    if (rc) return rc;
    for (size_t i = 0; i < m->n; i++) {
        const fent *e = &m->e[i];
        if (month) {
            sqlite3_stmt *u = s->add_roll[r];
            bind_entry(u, f, e, user);
            rc = sqlite3_step(u);
            sqlite3_reset(u);
            if (rc != SQLITE_DONE) return tg_sq_fail(s, err, "folding a day into the rollups");
            if (sqlite3_changes(s->db)) continue;
        }
        sqlite3_stmt *st = s->up_roll[r];
        bind_entry(st, f, e, user);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return tg_sq_fail(s, err, "folding a day into the rollups");
    }
    return TG_OK;
}

int tg_sq_fold_range(tg_store *s, int64_t from, int64_t to, tg_errmsg *err)
{
    fold_ctx f = {0};
    tg_arena_init(&f.in.arena);
    int rc = read_day(s, &f, from, to, err);
    if (!rc && make_ranks(&f.in)) {
        tg_errmsg_set(err, "%s: out of memory", s->path);
        rc = TG_ENOMEM;
    }
    for (int r = 0; r < TG_ROLL_COUNT_ && !rc; r++) rc = write_map(s, &f, r, err);
    for (int r = 0; r < TG_ROLL_COUNT_; r++) fmap_release(&f.map[r]);
    free(f.in.str);
    free(f.in.rank);
    free(f.in.hash);
    free(f.in.len);
    free(f.in.slots);
    tg_arena_release(&f.in.arena);
    return rc;
}
