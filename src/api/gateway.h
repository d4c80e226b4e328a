/* The gateway: the HTTP server with the API's handlers, the embedded
 * simulated provider when the configuration asks for it, and the current
 * configuration snapshot.
 *
 * Reload builds a whole new snapshot and swaps it in; a worker picks the
 * new one up at its next request and every request keeps the snapshot it
 * started with, so a reload never changes a request half-way. A snapshot
 * that fails to load changes nothing. Server settings (listen, workers,
 * limits) and the embedded sim are read once at start. */
#ifndef TG_API_GATEWAY_H
#define TG_API_GATEWAY_H

#include "base/err.h"
#include "conf/config.h"

typedef struct tg_gateway tg_gateway;

/* Takes over cfg's reference. */
int tg_gateway_start(tg_config *cfg, tg_gateway **out, tg_errmsg *err);
uint16_t tg_gateway_port(const tg_gateway *gw);
/* Loads path and swaps it in, or leaves the running one and explains. */
int tg_gateway_reload(tg_gateway *gw, const char *path, tg_errmsg *err);
/* Stops accepting, lets in-flight requests finish up to the configured
 * shutdown timeout, stops the sim, frees everything. */
void tg_gateway_stop(tg_gateway *gw);

#endif
