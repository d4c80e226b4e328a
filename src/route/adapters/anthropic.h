/* The Anthropic dialect (the Messages API): reading usage back from a
 * message or a stream event. */
#ifndef TG_ROUTE_ADAPTERS_ANTHROPIC_H
#define TG_ROUTE_ADAPTERS_ANTHROPIC_H

#include "route/adapters/openai.h"

/* Reads an Anthropic usage object (a message's "usage", or a stream's
 * message_start message.usage or message_delta usage) into u, in
 * OpenAI's convention (openai.h): prompt = input_tokens +
 * cache_read_input_tokens + cache_creation_input_tokens, cached = the
 * reads, cache_write = the creations, completion = output_tokens. A
 * member that is absent or null leaves what u had (message_delta carries
 * only the counts that changed), so feeding a stream's events in order
 * leaves the final counts. Does nothing when usage is not an object. */
void tg_anthropic_usage(tg_json_val usage, tg_usage *u);

#endif
