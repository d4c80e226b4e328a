/* Billing periods. See period.h. Calendar arithmetic on day numbers
 * (days since 1970-01-01), with Howard Hinnant's civil-from-days algorithm
 * written out, so nothing depends on the process's time zone. */
#include "bill/period.h"

#define MS_DAY 86400000LL

/* Days since 1970-01-01 of y-m-d (m 1..12, d 1..31). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void fill(uint32_t anchor, int64_t y, unsigned m, tg_period *out)
{
    int64_t ny = m == 12 ? y + 1 : y;
    unsigned nm = m == 12 ? 1 : m + 1;
    out->start_ms = days_from_civil(y, m, anchor) * MS_DAY;
    out->end_ms = days_from_civil(ny, nm, anchor) * MS_DAY;
    unsigned yy = (unsigned)(y % 10000);
    char *n = out->name;
    n[0] = (char)('0' + yy / 1000);
    n[1] = (char)('0' + yy / 100 % 10);
    n[2] = (char)('0' + yy / 10 % 10);
    n[3] = (char)('0' + yy % 10);
    n[4] = '-';
    n[5] = (char)('0' + m / 10);
    n[6] = (char)('0' + m % 10);
    n[7] = '\0';
}

void tg_period_at(uint32_t anchor_day, int64_t t_ms, tg_period *out)
{
    int64_t day = t_ms >= 0 ? t_ms / MS_DAY : -((-t_ms + MS_DAY - 1) / MS_DAY);
    int64_t y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    if (d < anchor_day) { /* before this month's anchor: the period began last month */
        if (--m == 0) {
            m = 12;
            y--;
        }
    }
    fill(anchor_day, y, m, out);
}

int tg_period_named(uint32_t anchor_day, tg_str name, tg_period *out)
{
    const char *p = name.p;
    if (name.n != 7 || p[4] != '-') return TG_EINVAL;
    int v[6];
    for (int i = 0, k = 0; i < 7; i++) {
        if (i == 4) continue;
        if (p[i] < '0' || p[i] > '9') return TG_EINVAL;
        v[k++] = p[i] - '0';
    }
    int64_t y = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3];
    unsigned m = (unsigned)(v[4] * 10 + v[5]);
    if (y < 1970 || m < 1 || m > 12 || (y == 9999 && m == 12)) return TG_EINVAL;
    fill(anchor_day, y, m, out);
    return TG_OK;
}
