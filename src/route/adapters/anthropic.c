/* Anthropic dialect; see anthropic.h. */
#include "route/adapters/anthropic.h"

/* Sets *dst from member key of obj when it is a whole number >= 0. */
static bool take(tg_json_val obj, const char *key, int64_t *dst)
{
    int64_t v;
    tg_json_val m = tg_json_get(obj, tg_str_c(key));
    if (m.type == TG_JSON_NONE || m.type == TG_JSON_NULL || tg_json_int(m, &v) || v < 0) return false;
    *dst = v;
    return true;
}

void tg_anthropic_usage(tg_json_val usage, tg_usage *u)
{
    if (usage.type != TG_JSON_OBJECT) return;
    /* the three input counts, apart: what u holds is their sum */
    int64_t read = u->cached, write = u->cache_write, input = u->prompt - read - write;
    bool any = take(usage, "input_tokens", &input);
    any |= take(usage, "cache_read_input_tokens", &read);
    any |= take(usage, "cache_creation_input_tokens", &write);
    any |= take(usage, "output_tokens", &u->completion);
    if (!any && !u->present) return;
    u->present = true;
    if (input < 0) input = 0;
    /* each count is at most 2^63 - 1; cap the sum rather than wrap */
    u->cached = read;
    u->cache_write = write < INT64_MAX - read ? write : INT64_MAX - read;
    u->prompt = input < INT64_MAX - read - u->cache_write ? input + read + u->cache_write : INT64_MAX;
    u->total = u->completion < INT64_MAX - u->prompt ? u->prompt + u->completion : INT64_MAX;
}
