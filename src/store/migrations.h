/* The store's numbered schema migrations (internal to src/store).
 *
 * Migration i (1-based) is tg_store_migrations_[i - 1]: SQL run in one
 * transaction that also records i in schema_version. Migrations are only
 * ever appended; a released one is never edited, because databases in the
 * field already ran it. */
#ifndef TG_STORE_MIGRATIONS_H
#define TG_STORE_MIGRATIONS_H

extern const char *const tg_store_migrations_[];
extern const int tg_store_nmigrations_;

/* Created before the first migration, outside the numbering. */
#define TG_STORE_VERSION_TABLE                                                                    \
    "CREATE TABLE IF NOT EXISTS schema_version ("                                                 \
    " version INTEGER PRIMARY KEY NOT NULL,"                                                      \
    " applied_ms INTEGER NOT NULL) STRICT"

#endif
