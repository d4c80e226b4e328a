/* Structured JSON-lines logging; see log.h. */
#include "base/log.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/jsonw.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static _Atomic int log_level = TG_LOG_INFO;
static _Atomic int log_fd = 2;
static const char *const names[] = {"debug", "info", "warn", "error", "off"};

void tg_log_set_level(tg_log_level lvl) { atomic_store(&log_level, (int)lvl); }
tg_log_level tg_log_get_level(void) { return (tg_log_level)atomic_load(&log_level); }
void tg_log_set_fd(int fd) { atomic_store(&log_fd, fd); }

int tg_log_parse_level(tg_str s, tg_log_level *out)
{
    for (int i = 0; i <= TG_LOG_OFF; i++)
        if (tg_str_eq(s, tg_str_c(names[i]))) {
            *out = (tg_log_level)i;
            return TG_OK;
        }
    return TG_EINVAL;
}

int tg_log_begin(tg_buf *b, tg_log_level lvl)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    return tg_buf_printf(b, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\"",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, ts.tv_nsec / 1000000, names[lvl]);
}

int tg_log_end(tg_buf *b) { return tg_buf_add_lit(b, "}\n"); }

void tg_log_write(const char *p, size_t n)
{
    int fd = atomic_load(&log_fd);
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
}

void tg_log(tg_log_level lvl, const char *fmt, ...)
{
    if ((int)lvl < atomic_load(&log_level)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg_buf b;
    tg_buf_init(&b, 4096);
    int rc = tg_log_begin(&b, lvl);
    if (!rc) rc = tg_buf_add_lit(&b, ",\"msg\":");
    if (!rc) rc = tg_jsonw_str(&b, tg_str_c(msg));
    if (!rc) rc = tg_log_end(&b);
    if (!rc) tg_log_write(b.p, b.n);
    tg_buf_release(&b);
}
