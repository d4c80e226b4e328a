/* A YAML document as a small tree whose nodes remember their line, and
 * readers that turn it into structs with messages naming file, line and
 * field.
 *
 * libyaml's event parser does the YAML; this layer turns its events into
 * mapping, list and scalar nodes so the configuration walker can look fields
 * up by name and name the line of whatever it rejects. The whole tree lives
 * in one arena, freed at once by tg_yaml_release. The readers (tg_yaml_walk
 * below) know nothing of tollgate's schema: conf/config.c does.
 *
 * Refused here, with "NAME:LINE: yaml: problem": syntax errors (the line is
 * libyaml's problem mark), anchors and aliases (a configuration gains nothing
 * from them and they make "which line?" ambiguous), more than one document,
 * mapping keys that are not scalars, and nesting deeper than
 * TG_YAML_MAX_DEPTH. Duplicate keys are left to the walker, which knows the
 * field path. */
#ifndef TG_CONF_YAML_H
#define TG_CONF_YAML_H

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_YAML_MAX_DEPTH 64

typedef enum { TG_YAML_SCALAR, TG_YAML_SEQ, TG_YAML_MAP } tg_yaml_kind;

typedef struct tg_yaml_node tg_yaml_node;
struct tg_yaml_node {
    tg_yaml_kind kind;
    int line;            /* 1-based line where the node starts */
    bool plain;          /* scalar written without quotes (numbers, booleans, null) */
    tg_str str;          /* scalar text, NUL-terminated (may hold NULs: use .n) */
    tg_yaml_node *key;   /* set on the values of a mapping: their key scalar */
    tg_yaml_node *child; /* mapping: first value; list: first item */
    tg_yaml_node *next;  /* next sibling in the parent */
    size_t n;            /* mapping: pairs; list: items */
};

typedef struct {
    tg_arena arena;
    tg_yaml_node *root; /* NULL for an empty document */
} tg_yaml_doc;

/* Parses text; `name` stands for the file in messages. On error returns
 * TG_EINVAL (TG_ENOMEM) with err filled and d released. */
int tg_yaml_parse(tg_yaml_doc *d, const char *name, tg_str text, tg_errmsg *err);
void tg_yaml_release(tg_yaml_doc *d);

/* ---- Reading a tree into structs ------------------------------------
 *
 * A walk carries the file name and the dotted path of the field being read
 * ("providers[0].base_url"), so every message reads
 * "NAME:LINE: path: problem" ("NAME:LINE: problem" at the top level). The
 * readers below return TG_OK, or fill err and return TG_EINVAL (TG_ENOMEM
 * from tg_yaml_nomem). Values that fail are quoted through tg_yaml_quote:
 * at most 40 printable characters, so a message stays on one line. */
typedef struct {
    const char *file;
    tg_errmsg *err;
    void *data; /* the caller's: what is being filled */
    char path[160];
    size_t plen;
    bool no_lines; /* "NAME: path: problem": the text is not a file a person edits */
} tg_yaml_walk;

/* Appends to the path ("%s" fields are joined with '.'); returns the mark
 * tg_yaml_pop restores. */
size_t tg_yaml_push(tg_yaml_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t tg_yaml_push_field(tg_yaml_walk *w, const char *name);
size_t tg_yaml_push_index(tg_yaml_walk *w, size_t i);
void tg_yaml_pop(tg_yaml_walk *w, size_t mark);
int tg_yaml_fail(tg_yaml_walk *w, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int tg_yaml_nomem(tg_yaml_walk *w);
const char *tg_yaml_quote(char buf[48], tg_str s);
/* The line to blame for v: an empty value points at its key. */
int tg_yaml_line(const tg_yaml_node *v);

/* A non-null scalar / a mapping / a list, or an error naming what v is. */
int tg_yaml_need_scalar(tg_yaml_walk *w, const tg_yaml_node *v);
int tg_yaml_need_map(tg_yaml_walk *w, const tg_yaml_node *v);
int tg_yaml_need_seq(tg_yaml_walk *w, const tg_yaml_node *v);
/* Unquoted decimal digits only (no sign, no 0x, no 1e3), min..max. */
int tg_yaml_u64(tg_yaml_walk *w, const tg_yaml_node *v, uint64_t min, uint64_t max, uint64_t *out);
/* Unquoted true or false. */
int tg_yaml_bool(tg_yaml_walk *w, const tg_yaml_node *v, bool *out);
/* 1..max bytes without control characters; out points into the tree. */
int tg_yaml_text(tg_yaml_walk *w, const tg_yaml_node *v, size_t max, tg_str *out);

/* Every key of m is one of names (NULL-terminated) and none repeats;
 * "unknown field 'x' (expected one of: ...)" otherwise. */
int tg_yaml_check_fields(tg_yaml_walk *w, const tg_yaml_node *m, const char *const names[]);
/* Field `name` of m, or "missing required field 'name'" at m's line. */
int tg_yaml_require(tg_yaml_walk *w, const tg_yaml_node *m, const char *name,
                    const tg_yaml_node **out);

typedef int (*tg_yaml_value_fn)(tg_yaml_walk *w, const tg_yaml_node *v, void *dst);
/* Runs fn on field `name` of m with the path extended; absent: TG_OK. */
int tg_yaml_field(tg_yaml_walk *w, const tg_yaml_node *m, const char *name, tg_yaml_value_fn fn,
                  void *dst);

/* Numeric fields by table: each present one is read into the uint32_t at
 * base + off, range-checked. */
typedef struct {
    const char *name;
    size_t off;
    uint32_t min, max;
} tg_yaml_u32;
int tg_yaml_u32_fields(tg_yaml_walk *w, const tg_yaml_node *m, void *base, const tg_yaml_u32 *f,
                       size_t n);

/* Duplicate detection in O(n log n): one entry per item, sorted in place.
 * Reports the earliest repeat in file order as
 * "section[i].field: duplicate WHAT 'key' (first at line N)", or, when echo
 * is false (secrets, hashes), "duplicate WHAT (section[j] at line N has the
 * same)". */
typedef struct {
    tg_str key;
    size_t idx;
    int line;
} tg_yaml_dupent;
int tg_yaml_dup_check(tg_yaml_walk *w, tg_yaml_dupent *e, size_t n, const char *section,
                      const char *field, const char *what, bool echo);

/* A plain scalar spelling null: empty, "~", "null", "Null" or "NULL". */
bool tg_yaml_is_null(const tg_yaml_node *n);
/* The value of key `name` in mapping m, or NULL. */
const tg_yaml_node *tg_yaml_get(const tg_yaml_node *m, const char *name);
/* "a mapping", "a list", "a value": for messages. */
const char *tg_yaml_kind_name(const tg_yaml_node *n);

#endif
