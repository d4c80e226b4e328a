/* Closing periods in the store (issue 6; migrations.c has the tables,
 * bill/close.h the documents and how they are made, docs/invoices.md the
 * rules). Part of the store's interface, like store/wallet.h.
 *
 * A close reads in one snapshot (tg_store_read_begin .. _end) what it
 * bills: the usage chunks up to a sequence number, the wallet
 * transactions up to a number, the plan history; it then writes its
 * documents in one write transaction (tg_store_close_write), which first
 * checks that the closes it read are still what the store has, so two
 * closes racing cannot both land. A close that stops half way (a crash)
 * has written nothing. */
#ifndef TG_STORE_CLOSE_H
#define TG_STORE_CLOSE_H

#include "bill/close.h"
#include "conf/config.h"
#include "store/store.h"

/* ---- plan history ---- */

/* Records that customer of app is on plan ("": none) from t_ms on (0:
 * since always); a change at the same t_ms replaces it. TG_EIO. */
int tg_store_plan_change(tg_store *s, tg_str app, tg_str customer, tg_str plan, int64_t t_ms,
                         tg_errmsg *err);
/* Records the plans of cfg's customers (the file's) where they differ
 * from the last the history has, from now_ms on; a customer the history
 * does not know yet is on its plan since always (t 0). The gateway calls
 * it at start and at each reload, and `tollgate close-period` before it
 * closes, so a plan changed in the file is billed from the day it was
 * loaded. TG_EIO. */
int tg_store_plan_sync(tg_store *s, const tg_config *cfg, int64_t now_ms, tg_errmsg *err);
/* Calls fn for every plan change, in (app, customer, t_ms) order. */
int tg_store_each_plan_change(tg_store *s,
                              int (*fn)(void *ud, const char *app, const char *customer,
                                        int64_t t_ms, const char *plan),
                              void *ud, tg_errmsg *err);

/* ---- what a close reads ---- */

/* A read transaction: what is read until _end is one snapshot. */
int tg_store_read_begin(tg_store *s, tg_errmsg *err);
void tg_store_read_end(tg_store *s);

/* The closes the store has, by period (malloc'd in *out, NULL when *n is
 * 0). TG_EIO, TG_ENOMEM. */
int tg_store_closes(tg_store *s, tg_close_state **out, size_t *n, tg_errmsg *err);
/* The last usage chunk and wallet transaction stored (0: none). */
int tg_store_marks(tg_store *s, int64_t *seq, int64_t *tx, tg_errmsg *err);
/* Calls fn for every record of the usage chunks numbered in (seq_lo,
 * seq_hi] whose start is in [from_ms, to_ms). */
int tg_store_each_record_seq(tg_store *s, int64_t seq_lo, int64_t seq_hi, int64_t from_ms,
                             int64_t to_ms, int (*fn)(void *ud, const tg_usage_rec *r), void *ud,
                             tg_errmsg *err);
/* Calls fn with the sum of every wallet account's entries in the burns of
 * period numbered in (tx_lo, tx_hi], per customer and UTC day (day_ms:
 * its start; a burn transaction is of one day): account is "usage",
 * "overage" or "grant:<id>"; credits as the entries have them (what
 * leaves an account is negative). */
int tg_store_each_burn_sum(tg_store *s, const char *period, int64_t tx_lo, int64_t tx_hi,
                           int (*fn)(void *ud, const char *app, const char *customer,
                                     const char *account, int64_t day_ms, tg_ncredits credits),
                           void *ud, tg_errmsg *err);
/* Calls fn for every entry of the burns of (app, customer) in period
 * numbered in (tx_lo, tx_hi], by transaction: its number, time, the
 * records and charge it burned for, and one entry (account, credits). */
int tg_store_each_burn_entry(tg_store *s, const char *app, const char *customer, const char *period,
                             int64_t tx_lo, int64_t tx_hi,
                             int (*fn)(void *ud, int64_t tx, int64_t t_ms, int64_t records,
                                       tg_nanos charge, const char *account, tg_ncredits credits),
                             void *ud, tg_errmsg *err);
/* Calls fn for every grant other than an included one whose transaction
 * is numbered in (tx_lo, tx_hi], with the grant's time (created_ms). */
int tg_store_each_grant_made(tg_store *s, int64_t tx_lo, int64_t tx_hi,
                             int (*fn)(void *ud, const char *app, const char *customer,
                                       const tg_grant *g, tg_nanos paid),
                             void *ud, tg_errmsg *err);

/* ---- writing and reading documents ---- */

/* In one write transaction: checks that the store's closes are still
 * those of `seen` (TG_EINVAL, err saying another close landed, when
 * not), removes the documents of any draft, writes d's documents and its
 * closes row. TG_EIO. */
int tg_store_close_write(tg_store *s, const tg_close_state *seen, size_t nseen,
                         const tg_close_docs *d, tg_errmsg *err);
/* The documents of period's close, as written (TG_ENOTFOUND when the
 * period has no close). Free with tg_close_docs_release. */
int tg_store_close_read(tg_store *s, const char *period, tg_close_docs *d, tg_errmsg *err);
/* The period of invoice id, in period (8 bytes); TG_ENOTFOUND. */
int tg_store_invoice_period(tg_store *s, const char *id, char period[8], tg_errmsg *err);

#endif
