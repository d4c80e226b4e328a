/* Builder statements and provider settlements. See close.h and
 * docs/invoices.md ("Statements", "Settlements"). */
#include "bill/close.h"

#include "base/money.h"

#include <stdlib.h>
#include <string.h>

void tg_stmt_row_make(const tg_close_acct *a, const tg_invoice *inv, tg_stmt_row *row)
{
    memset(row, 0, sizeof *row);
    memcpy(row->app, a->app, sizeof row->app);
    memcpy(row->customer, a->customer, sizeof row->customer);
    row->margin = a->margin;
    if (inv) {
        memcpy(row->invoice, inv->id, sizeof row->invoice);
        row->records = inv->records;
        row->charge = inv->charge;
        row->cost_exact = inv->cost;
        row->fee_exact = inv->fee;
        row->billed_exact = inv->exact;
        row->billed = inv->total - inv->tax;
        for (size_t i = 0; i < a->nlate; i++) row->margin += a->late[i].charge - a->late[i].cost - a->late[i].fee;
    } else {
        row->records = a->records;
        row->charge = a->charge;
        row->cost_exact = a->cost;
        row->fee_exact = a->fee;
    }
    /* the sums fit (the invoice's were checked); the difference is at
     * most three of them apart. Cents: tg_stmt_cents, over all rows. */
    row->earnings_exact = row->billed_exact - row->cost_exact - row->fee_exact;
}

/* Cuts round-half-up(the sum of exact[0..n)) into parts by largest
 * remainder; *total gets the rounded sum. */
static int cents_of(const tg_nanos *exact, size_t n, tg_nanos *parts, tg_nanos *total)
{
    __int128 sum = 0;
    for (size_t i = 0; i < n; i++) sum += exact[i];
    if (sum > INT64_MAX / 2 || sum < INT64_MIN / 2) return TG_EINVAL;
    *total = tg_money_round_cents((tg_nanos)sum);
    return tg_money_apportion(*total, exact, n, TG_NANOS_PER_CENT, parts);
}

int tg_stmt_cents(tg_stmt_row *rows, size_t n, tg_nanos *cost_total, tg_errmsg *err)
{
    *cost_total = 0;
    if (!n) return TG_OK;
    tg_nanos *exact = malloc(2 * n * sizeof *exact), *parts = exact + n, fee_total;
    if (!exact) return tg_errmsg_set(err, "out of memory"), TG_ENOMEM;
    for (size_t i = 0; i < n; i++) exact[i] = rows[i].cost_exact;
    int rc = cents_of(exact, n, parts, cost_total);
    for (size_t i = 0; !rc && i < n; i++) {
        rows[i].cost = parts[i];
        exact[i] = rows[i].fee_exact;
    }
    if (!rc) rc = cents_of(exact, n, parts, &fee_total);
    for (size_t i = 0; !rc && i < n; i++) {
        rows[i].fee = parts[i];
        rows[i].earnings = rows[i].billed - rows[i].cost - rows[i].fee;
    }
    free(exact);
    if (rc) return tg_errmsg_set(err, "the period's cost or fee is too large to count");
    return TG_OK;
}

/* Cuts whole over rows[lo, hi) by their exact cost; with by_provider, over
 * the providers' groups first, each then over its offerings. */
static int cut(tg_settle_row *rows, size_t lo, size_t hi, tg_nanos whole, bool by_provider)
{
    size_t n = 0;
    for (size_t i = lo; i < hi; i++)
        if (!by_provider || i == lo || strcmp(rows[i].provider, rows[i - 1].provider)) n++;
    tg_nanos *exact = calloc(n * 2, sizeof *exact);
    if (!exact) return TG_ENOMEM;
    tg_nanos *parts = exact + n;
    size_t k = 0;
    for (size_t i = lo; i < hi; i++) {
        if (by_provider && i > lo && strcmp(rows[i].provider, rows[i - 1].provider)) k++;
        exact[by_provider ? k : i - lo] += rows[i].cost_exact;
    }
    int rc = tg_money_apportion(whole, exact, n, TG_NANOS_PER_CENT, parts);
    if (!rc && by_provider) {
        size_t start = lo;
        k = 0;
        for (size_t i = lo + 1; !rc && i <= hi; i++)
            if (i == hi || strcmp(rows[i].provider, rows[i - 1].provider)) {
                rc = cut(rows, start, i, parts[k++], false);
                start = i;
            }
    } else if (!rc) {
        for (size_t i = lo; i < hi; i++) rows[i].cost = parts[i - lo];
    }
    free(exact);
    return rc;
}

int tg_settle_cents(tg_settle_row *rows, size_t n, tg_nanos cost_cents, tg_errmsg *err)
{
    if (n == 0) {
        if (cost_cents == 0) return TG_OK;
        return tg_errmsg_set(err, "the statements cost %lld nanos but no provider served anything",
                             (long long)cost_cents);
    }
    int rc = cut(rows, 0, n, cost_cents, true);
    if (rc == TG_ENOMEM) tg_errmsg_set(err, "out of memory");
    else if (rc) tg_errmsg_set(err, "a provider's cost is too large to count");
    return rc;
}
