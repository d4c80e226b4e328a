/* libFuzzer target: what the admin API and `tollgate topup` read of a
 * top-up (bill/wallet.c, tg_grant_from_topup) and the UTC dates and
 * period names they take (bill/period.c). The input is up to four
 * NUL-separated fields: credits, paid, expires, then a byte whose low bit
 * makes the grant promotional and whose rest is a priority.
 * Checks: no crash; a grant made is more than 0 credits, expires after
 * now or never, is paid for only when not promotional, and has a
 * "g_" + 32 hex id; a date that parses formats back to itself and parses
 * again to the same instant; a period name that parses holds its start. */
#include "bill/period.h"
#include "bill/wallet.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1796649832000LL /* 2026-12-07 */

static void check_date(tg_str s)
{
    int64_t ms, again;
    if (tg_utc_parse(s, &ms)) return;
    char out[TG_UTC_STRLEN];
    tg_utc_format(ms, out);
    if (tg_utc_parse(tg_str_c(out), &again) || again != ms) abort();
    if (s.n == 20 && memcmp(out, s.p, 20)) abort();
    tg_period p;
    tg_period_at(1 + (uint32_t)(ms % 28), ms, &p);
    if (!(p.start_ms <= ms && ms < p.end_ms)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_str f[4] = {TG_STR_NULL, TG_STR_NULL, TG_STR_NULL, TG_STR_NULL};
    size_t k = 0, at = 0;
    for (size_t i = 0; i <= size && k < 4; i++)
        if (i == size || data[i] == 0) {
            f[k++] = tg_str_make((const char *)data + at, i - at);
            at = i + 1;
        }
    uint8_t flags = f[3].n ? (uint8_t)f[3].p[0] : 0;
    tg_topup t = {.credits = f[0], .paid = f[1], .expires = f[2], .promo = flags & 1,
                  .priority = (int64_t)(flags >> 1) * 10000 - 640000};
    tg_grant g;
    tg_nanos paid;
    tg_errmsg err;
    if (!tg_grant_from_topup(&t, NOW, &g, &paid, &err)) {
        if (g.granted <= 0 || g.left != g.granted || (g.expires_ms && g.expires_ms <= NOW)) abort();
        if (paid < 0 || (t.promo && paid) || g.kind != (t.promo ? TG_GRANT_PROMO : TG_GRANT_PAID)) abort();
        if (strlen(g.id) != 34 || memcmp(g.id, "g_", 2) || strspn(g.id + 2, "0123456789abcdef") != 32) abort();
    } else if (!err.msg[0]) {
        abort();
    }
    for (size_t i = 0; i < k; i++) check_date(f[i]);
    tg_period p;
    if (f[0].n && !tg_period_named(15, f[0], &p) && p.end_ms <= p.start_ms) abort();
    return 0;
}
