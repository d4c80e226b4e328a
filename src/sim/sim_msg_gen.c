/* Anthropic's answers (POST /v1/messages): the whole message and the
 * stream's events, drawn from the same plan as OpenAI's answers (see
 * sim_gen.c), so the same conversation says the same words, or calls the
 * same tool with the same input, in both dialects.
 *
 * Usage reports the prompt apart from the cache, as Anthropic does:
 * input_tokens = prompt - cache_read_input_tokens -
 * cache_creation_input_tokens. A stream's message_start carries the input
 * counts and output_tokens 1, its message_delta the final output_tokens,
 * as the real API's do. */
#include "sim/sim_int.h"

#include "base/jsonw.h"

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((rc = (x))) return rc;                                                                 \
    } while (0)

static const char *stop_reason(const tg_sim__plan *plan)
{
    return plan->length ? "max_tokens" : plan->tool ? "tool_use" : "end_turn";
}

static int usage(tg_buf *b, const tg_sim__head *h, uint32_t prompt, uint32_t output)
{
    tg_sim__cache k = tg_sim__cache_of(h, prompt);
    return tg_buf_printf(b,
                         "{\"input_tokens\":%u,\"output_tokens\":%u,"
                         "\"cache_creation_input_tokens\":%u,\"cache_read_input_tokens\":%u}",
                         prompt - k.read - k.write, output, k.write, k.read);
}

/* {"id":..,"type":"message","role":"assistant","model":..,"content":[ */
static int message_head(tg_buf *b, const tg_sim__head *h)
{
    int rc;
    TRY(tg_buf_printf(
        b, "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", h->id));
    TRY(tg_buf_add_str(b, tg_buf_str(&h->model_json)));
    return tg_buf_add_lit(b, ",\"content\":[");
}

/* A tool_use block with its input (the stream's opening block: {}). */
static int tool_use(tg_buf *b, const tg_sim__head *h, tg_str input)
{
    int rc;
    TRY(tg_buf_printf(b, "{\"type\":\"tool_use\",\"id\":\"%s\",\"name\":", h->call_id));
    TRY(tg_buf_add_str(b, tg_buf_str(&h->tool_json)));
    TRY(tg_buf_add_lit(b, ",\"input\":"));
    TRY(tg_buf_add_str(b, input));
    return tg_buf_add_char(b, '}');
}

int tg_sim__msg_body(tg_buf *b, const tg_sim__head *h, tg_sim__plan *plan, uint32_t prompt)
{
    int rc;
    TRY(message_head(b, h));
    if (plan->tool) {
        TRY(tool_use(b, h, tg_sim__plan_input(plan)));
    } else {
        TRY(tg_buf_add_lit(b, "{\"type\":\"text\",\"text\":\""));
        /* words need no escaping: they are lowercase letters and spaces */
        for (uint32_t i = 0; i < plan->tokens; i++)
            TRY(tg_buf_add_str(b, tg_sim__piece(plan, !i)));
        TRY(tg_buf_add_lit(b, "\"}"));
    }
    TRY(tg_buf_printf(
        b, "],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":", stop_reason(plan)));
    TRY(usage(b, h, prompt, plan->tokens));
    return tg_buf_add_char(b, '}');
}

/* ---- stream events: "event: NAME\ndata: JSON\n\n" ---- */

int tg_sim__msg_ev_begin(tg_buf *b, const tg_sim__head *h, const tg_sim__plan *plan,
                         uint32_t prompt)
{
    int rc;
    TRY(tg_buf_add_lit(b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"));
    TRY(message_head(b, h));
    TRY(tg_buf_add_lit(b, "],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"));
    TRY(usage(b, h, prompt, 1));
    TRY(tg_buf_add_lit(b,
                       "}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\","
                       "\"index\":0,\"content_block\":"));
    TRY(plan->tool ? tool_use(b, h, TG_STR("{}"))
                   : tg_buf_add_lit(b, "{\"type\":\"text\",\"text\":\"\"}"));
    return tg_buf_add_lit(b, "}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n");
}

int tg_sim__msg_ev_piece(tg_buf *b, const tg_sim__plan *plan, tg_str piece)
{
    int rc;
    TRY(tg_buf_add_lit(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                          "\"index\":0,\"delta\":"));
    TRY(plan->tool ? tg_buf_add_lit(b, "{\"type\":\"input_json_delta\",\"partial_json\":")
                   : tg_buf_add_lit(b, "{\"type\":\"text_delta\",\"text\":"));
    TRY(tg_jsonw_str(b, piece));
    return tg_buf_add_lit(b, "}}\n\n");
}

int tg_sim__msg_ev_end(tg_buf *b, const tg_sim__plan *plan, uint32_t completion)
{
    int rc;
    TRY(tg_buf_add_lit(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                          "\"index\":0}\n\n"));
    TRY(tg_buf_printf(b,
                      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                      "{\"stop_reason\":\"%s\",\"stop_sequence\":null},\"usage\":"
                      "{\"output_tokens\":%u}}\n\n",
                      stop_reason(plan), completion));
    return tg_sim__msg_ev_last(b);
}

int tg_sim__msg_ev_last(tg_buf *b)
{
    return tg_buf_add_lit(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}
