/* Prometheus metrics.
 *
 * Each worker records into its own shard, under the shard's own mutex,
 * which only a scrape ever contends for; a scrape merges the shards. Label
 * values are bounded: a model label is a configured model name or
 * "unknown", a provider label a configured provider name, so a client
 * cannot grow the series without bound. */
#ifndef TG_API_METRICS_H
#define TG_API_METRICS_H

#include "base/buf.h"

#include <stdint.h>

typedef struct tg_metrics tg_metrics;
typedef struct tg_metrics_shard tg_metrics_shard;

tg_metrics *tg_metrics_new(unsigned nshards);
void tg_metrics_free(tg_metrics *m);
tg_metrics_shard *tg_metrics_shard_of(tg_metrics *m, unsigned i);

/* One finished client request. ttfb_ns 0: no response byte was sent. */
void tg_metrics_request(tg_metrics_shard *s, tg_str model, int status, uint64_t latency_ns,
                        uint64_t ttfb_ns, int64_t prompt_tokens, int64_t completion_tokens);
/* One failed upstream call; kind as tg_up_result_str or "http_5xx" etc. */
void tg_metrics_upstream_error(tg_metrics_shard *s, tg_str provider, const char *kind);
/* A config reload attempt. */
void tg_metrics_reload(tg_metrics *m, bool ok);

/* The text exposition format (version 0.0.4). */
int tg_metrics_render(tg_metrics *m, long open_connections, tg_buf *out);

#endif
