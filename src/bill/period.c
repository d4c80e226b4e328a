/* Billing periods. See period.h. Calendar arithmetic on day numbers
 * (days since 1970-01-01), with Howard Hinnant's civil-from-days algorithm
 * written out, so nothing depends on the process's time zone. */
#include "bill/period.h"

#include <stdbool.h>
#include <string.h>

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

/* n decimal digits at p into *v; false on anything else. */
static bool digits(const char *p, int n, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        *v = *v * 10 + (unsigned)(p[i] - '0');
    }
    return true;
}

int tg_utc_parse(tg_str s, int64_t *ms)
{
    const char *p = s.p;
    unsigned y, m, d, hh = 0, mm = 0, ss = 0;
    if (s.n != 10 && s.n != 20) return TG_EINVAL;
    if (!digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &m) || p[7] != '-' ||
        !digits(p + 8, 2, &d))
        return TG_EINVAL;
    if (s.n == 20 && (p[10] != 'T' || !digits(p + 11, 2, &hh) || p[13] != ':' ||
                      !digits(p + 14, 2, &mm) || p[16] != ':' || !digits(p + 17, 2, &ss) ||
                      p[19] != 'Z'))
        return TG_EINVAL;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || hh > 23 || mm > 59 || ss > 59) return TG_EINVAL;
    int64_t day = days_from_civil(y, m, d);
    int64_t cy;
    unsigned cm, cd;
    civil_from_days(day, &cy, &cm, &cd);
    if (cm != m || cd != d) return TG_EINVAL; /* the 30th of February */
    *ms = (day * 86400 + hh * 3600 + mm * 60 + ss) * 1000;
    return TG_OK;
}

void tg_utc_format(int64_t ms, char out[TG_UTC_STRLEN])
{
    int64_t sec = ms / 1000, day = sec / 86400, y;
    unsigned m, d, rest = (unsigned)(sec % 86400);
    civil_from_days(day, &y, &m, &d);
    unsigned v[6] = {(unsigned)(y % 10000), m, d, rest / 3600, rest / 60 % 60, rest % 60};
    static const char shape[] = "0000-00-00T00:00:00Z";
    memcpy(out, shape, sizeof shape);
    static const int at[6] = {0, 5, 8, 11, 14, 17}, width[6] = {4, 2, 2, 2, 2, 2};
    for (int i = 0; i < 6; i++)
        for (int k = width[i] - 1, x = (int)v[i]; k >= 0; k--, x /= 10) out[at[i] + k] = (char)('0' + x % 10);
}
