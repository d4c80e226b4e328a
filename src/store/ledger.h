/* The ledger: one background thread that projects usage records into the
 * store in batches (DESIGN.md, the last stage of the request path).
 *
 * Workers hand each finished record to tg_ledger_submit together with its
 * journal ticket; the call copies the record into a queue and returns (no
 * I/O, a short mutex). The thread commits a batch when it has
 * batch_records or flush_ms has passed, then settles the batch's tickets
 * in the journal. If the store fails, the batch is retried and its
 * records stay in the journal, so nothing is lost. */
#ifndef TG_STORE_LEDGER_H
#define TG_STORE_LEDGER_H

#include "meter/journal.h"
#include "store/store.h"

typedef struct tg_ledger tg_ledger;

/* Starts the thread over an open store (the ledger owns it from here). */
int tg_ledger_start(const tg_metering_conf *c, tg_store *s, tg_journal *j, tg_ledger **out,
                    tg_errmsg *err);
/* Queues r (copied) with its ticket. Never fails; never blocks on I/O. */
void tg_ledger_submit(tg_ledger *l, const tg_usage_rec *r, const tg_jticket *t);
/* Commits what is queued, stops the thread, closes the store. */
void tg_ledger_stop(tg_ledger *l);

#endif
