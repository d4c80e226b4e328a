/* libFuzzer target: the report and usage query parsers, which read the
 * query strings of /v1/usage and /admin/v1/reports. The input is up to
 * four NUL-separated fields: period, by, app, customer. On success the
 * period must be a non-empty range of whole UTC days. */
#include "report/records.h"
#include "report/report.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[4 * 256];
    const char *f[4] = {"", "", "", ""};
    if (size >= sizeof buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    size_t k = 0;
    f[k++] = buf;
    for (size_t i = 0; i < size && k < 4; i++)
        if (buf[i] == '\0') f[k++] = buf + i + 1;
    tg_report_query q;
    tg_errmsg err;
    if (!tg_report_query_parse(&q, f[0], f[1], f[2], f[3], 0, &err)) {
        if (q.to_ms <= q.from_ms || q.from_ms % 86400000 || q.to_ms % 86400000) abort();
    } else if (!err.msg[0]) {
        abort();
    }
    tg_records_query rq;
    if (!tg_records_query_parse(&rq, f[0], f[2], f[3], f[1], f[1], 0, &err) && rq.to_ms <= rq.from_ms)
        abort();
    return 0;
}
