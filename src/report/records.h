/* Usage records one by one (`tollgate usage`): for audits, reconciliation
 * against a provider's own log, and the tests that check every request is
 * in the ledger exactly once. Unlike reports, this reads the usage table,
 * so it is for narrow queries (one customer, one request id) or exports. */
#ifndef TG_REPORT_RECORDS_H
#define TG_REPORT_RECORDS_H

#include "report/report.h"
#include "store/records.h"
#include "store/store.h"

#include <stdio.h>

/* Filters of tg_records_print; fill with tg_records_query_parse. */
typedef struct {
    int64_t from_ms, to_ms;        /* [from, to); 0, 0: all time */
    tg_record_filter f;            /* app, customer, rid ("" : any) */
    size_t limit;                  /* 0: all */
} tg_records_query;

/* period as for reports (NULL: all time); app, customer, rid, run may be
 * NULL. */
int tg_records_query_parse(tg_records_query *q, const char *period, const char *app,
                           const char *customer, const char *rid, const char *run, size_t limit,
                           tg_errmsg *err);

/* Writes the records that match q, oldest first, to out as a table, CSV
 * (a header row, RFC 4180) or JSON ({"records":[...]}): every field of the
 * record, amounts as exact 9-decimal USD strings and as *_nanos integers.
 * Streams: memory stays flat however many records match. */
int tg_records_print(tg_store *s, const tg_records_query *q, tg_report_format f, FILE *out,
                     tg_errmsg *err);

#endif
