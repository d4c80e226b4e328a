/* The simulated provider ("sim"): a fake model provider speaking OpenAI's
 * and Anthropic's dialects, the test double of every end-to-end test and
 * benchmark and the default provider of `make run`.
 *
 * It serves /v1/chat/completions, /v1/completions, /v1/embeddings and
 * /v1/models in OpenAI's shapes and /v1/messages in Anthropic's (buffered
 * and streamed, tool calls included), plus /sim/stats and /sim/requests,
 * on the project's own HTTP server. Every answer is deterministic: the text
 * is drawn from a PRNG seeded by the configured seed, the model and the
 * prompt, so the same request always gets the same content, streamed or
 * not, in either dialect, and a max_tokens limit cuts the natural answer to
 * a prefix. Faults (429, 500, 503, timeout, reset, cut, malformed) are
 * injected by the X-Sim-Fault request header or by the configured
 * percentage rules. /sim/stats reports what the sim served and what it
 * would have billed, per model; that is the ground truth tests compare the
 * gateway's metering with. docs/sim.md has the user-facing rules. */
#ifndef TG_SIM_SIM_H
#define TG_SIM_SIM_H

#include "base/err.h"
#include "base/str.h"
#include "conf/config.h"
#include "http/server.h"

#include <stdint.h>

/* Starts a server with one worker on conf->listen (port 0: any free port;
 * tg_server_port tells which) serving the sim. conf is copied.
 * required_key, when not NULL, is copied too, and every /v1/ request must
 * carry it or gets 401: "Authorization: Bearer <required_key>" in OpenAI's
 * dialect, "x-api-key: <required_key>" in Anthropic's (the /sim/ endpoints
 * need no key). Stop it with tg_server_drain and tg_server_join;
 * the sim's own state is freed with the server. On error returns TG_EINVAL,
 * TG_ENOMEM or TG_EIO with err->msg saying why (a busy port, say), and
 * *out untouched. */
int tg_sim_start(const tg_sim_conf *conf, const char *required_key, tg_server **out,
                 tg_errmsg *err);

/* The sim's token count of a text: each maximal run of ASCII letters and
 * digits counts 1, every other byte counts 1 except ASCII whitespace and
 * UTF-8 continuation bytes, which count 0 (so a non-ASCII character counts
 * 1 by its lead byte). "Hello, world!" is 4 tokens. */
uint32_t tg_sim_count_tokens(tg_str text);

#endif
