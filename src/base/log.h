/* Structured logging: one JSON object per line on stderr (or a file).
 *
 * Two paths. tg_log() is for events (start, reload, errors): it formats and
 * writes a line at once. Request lines are hot: each worker builds them into
 * its own batch buffer and hands the batch to tg_log_write() once per loop
 * iteration, so a busy worker makes one write(2) for many requests.
 * A single write(2) of a whole batch keeps lines from different threads from
 * interleaving. Secrets (provider keys, customer keys) are never passed here;
 * keys are logged by their configured id only. */
#ifndef TG_BASE_LOG_H
#define TG_BASE_LOG_H

#include "base/buf.h"

typedef enum { TG_LOG_DEBUG, TG_LOG_INFO, TG_LOG_WARN, TG_LOG_ERROR, TG_LOG_OFF } tg_log_level;

void tg_log_set_level(tg_log_level lvl);
tg_log_level tg_log_get_level(void);
/* Parses "debug|info|warn|error|off"; TG_EINVAL otherwise. */
int tg_log_parse_level(tg_str s, tg_log_level *out);
/* Where lines go (default 2, stderr). */
void tg_log_set_fd(int fd);

/* One event line: {"ts":...,"level":...,"msg":"<formatted>"}. */
void tg_log(tg_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Starts a line in b: {"ts":"...","level":"info", (the caller adds fields
 * and closes it with tg_log_end). */
int tg_log_begin(tg_buf *b, tg_log_level lvl);
int tg_log_end(tg_buf *b);
/* Writes whole lines; retries short writes. */
void tg_log_write(const char *p, size_t n);

#endif
