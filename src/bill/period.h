/* Billing periods (docs/plans.md): what included credits, thresholds and
 * hard caps count within, and what closing a month closes.
 *
 * An app's period starts on its anchor day (1..28) of a month at 00:00 UTC
 * and ends on the same day of the next month: with anchor 1, the calendar
 * month. A period is named by the month it starts in ("2026-11" with
 * anchor 15 runs from 2026-11-15 to 2026-12-15). */
#ifndef TG_BILL_PERIOD_H
#define TG_BILL_PERIOD_H

#include "base/err.h"
#include "base/str.h"

#include <stdint.h>

typedef struct {
    int64_t start_ms, end_ms; /* [start, end), unix ms */
    char name[8];             /* "2026-11" */
} tg_period;

/* The period holding t_ms (unix ms, from 1970 to 9999). */
void tg_period_at(uint32_t anchor_day, int64_t t_ms, tg_period *out);
/* The period named name ("YYYY-MM"); TG_EINVAL when it is not a month
 * from 1970-01 to 9999-11. */
int tg_period_named(uint32_t anchor_day, tg_str name, tg_period *out);

/* "YYYY-MM-DD" (midnight UTC) or "YYYY-MM-DDTHH:MM:SSZ", from 1970 to
 * 9999, into unix ms; TG_EINVAL for anything else (other zones, fractions,
 * impossible dates such as 2026-02-30). */
int tg_utc_parse(tg_str s, int64_t *ms);
/* ms (>= 0) as "YYYY-MM-DDTHH:MM:SSZ" (whole seconds). */
#define TG_UTC_STRLEN 21
void tg_utc_format(int64_t ms, char out[TG_UTC_STRLEN]);

#endif
