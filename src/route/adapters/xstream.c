/* Stream translation between the OpenAI and Anthropic dialects; see
 * xstream.h for the mapping and the phases.
 *
 * Strings from upstream are copied into the client's events as the exact
 * JSON text they came as (each event was validated first), so nothing is
 * decoded and re-escaped on the hot path; only what must be held (a tool
 * call's id, name and arguments while it waits its turn) is decoded, and
 * escaped again with tg_jsonw_str when written. Every call that fails
 * takes back what it appended, so the client never gets half an event. */
#include "route/adapters/xstream.h"
#include "base/jsonw.h"
#include "route/adapters/anthropic.h"

#include <stdlib.h>

enum { CALL_HELD, CALL_LIVE, CALL_CLOSED };

#define HEAD_MAX (16u << 10)

/* A string to write: JSON text as it came (raw.p set), or bytes to escape. */
typedef struct {
    tg_str raw, text;
} jstr;

static jstr raw_of(tg_json_val v)
{
    return (jstr){tg_str_make(v.p, v.n), TG_STR_NULL};
}
static jstr text_of(tg_str t)
{
    return (jstr){TG_STR_NULL, t};
}

static int put(tg_buf *out, jstr v)
{
    return v.raw.p ? tg_buf_add_str(out, v.raw) : tg_jsonw_str(out, v.text);
}

static int fail(tg_xstream *s, const char *why)
{
    s->why = why;
    return TG_EINVAL;
}

static tg_json_val member(tg_json_val obj, const char *key)
{
    return tg_json_get(obj, tg_str_c(key));
}

/* A string value equal to lit (type names never carry escapes). */
static bool is(tg_json_val v, const char *lit)
{
    tg_str t;
    return tg_json_str_view(v, &t) && tg_str_eq(t, tg_str_c(lit));
}

static bool absent(tg_json_val v)
{
    return v.type == TG_JSON_NONE || v.type == TG_JSON_NULL;
}
static bool nonempty_str(tg_json_val v)
{
    return v.type == TG_JSON_STRING && v.n > 2;
}

/* A value that says something: not absent, not "", not [] nor {}. */
static bool carries(tg_json_val v)
{
    if (absent(v)) return false;
    if (v.type == TG_JSON_STRING) return v.n > 2;
    if (v.type != TG_JSON_ARRAY && v.type != TG_JSON_OBJECT) return true;
    tg_json_iter it = tg_json_iter_init(v);
    tg_json_val k, e;
    return tg_json_iter_next(&it, &k, &e);
}

/* The member that tells a client why the gateway cut its stream. */
static int put_stopped(tg_buf *out, tg_str why)
{
    int rc = tg_buf_add_lit(out, ",\"tollgate\":{\"stopped\":\"plan_limit\",\"message\":");
    if (!rc) rc = tg_jsonw_str(out, why);
    return rc ? rc : tg_buf_add_char(out, '}');
}

/* ---- Anthropic upstream -> OpenAI client ------------------------------- */

/* The first chunk's delta, as OpenAI writes it. */
#define ROLE_DELTA TG_STR("{\"role\":\"assistant\",\"content\":\"\"}")

static int chunk_begin(tg_xstream *s, tg_buf *out)
{
    int rc = tg_buf_add_lit(out, "data: ");
    if (!rc) rc = tg_buf_add_str(out, tg_buf_str(&s->head));
    return rc ? rc : tg_buf_add_lit(out, "\"choices\":[{\"index\":0,\"delta\":");
}

/* Ends a chunk begun with chunk_begin and its delta written; finish is a
 * literal or NULL; why, when set, is the plan-limit explanation. */
static int chunk_end(tg_xstream *s, tg_buf *out, const char *finish, const tg_str *why)
{
    int rc = tg_buf_add_lit(out, ",\"logprobs\":null,\"finish_reason\":");
    if (!rc) rc = finish ? tg_buf_printf(out, "\"%s\"}]", finish) : tg_buf_add_lit(out, "null}]");
    if (!rc && s->include_usage) rc = tg_buf_add_lit(out, ",\"usage\":null");
    if (!rc && why) rc = put_stopped(out, *why);
    return rc ? rc : tg_buf_add_lit(out, "}\n\n");
}

/* A whole chunk with a delta given as JSON text. */
static int chunk(tg_xstream *s, tg_buf *out, tg_str delta, const char *finish)
{
    int rc = chunk_begin(s, out);
    if (!rc) rc = tg_buf_add_str(out, delta);
    return rc ? rc : chunk_end(s, out, finish, NULL);
}

static int ao_text(tg_xstream *s, tg_json_val text, tg_buf *out)
{
    int rc = chunk_begin(s, out);
    if (!rc) rc = tg_buf_add_lit(out, "{\"content\":");
    if (!rc) rc = tg_buf_add_str(out, tg_str_make(text.p, text.n));
    if (!rc) rc = tg_buf_add_char(out, '}');
    return rc ? rc : chunk_end(s, out, NULL, NULL);
}

/* Arguments of the open tool call (k = s->tools - 1). */
static int ao_args(tg_xstream *s, jstr args, tg_buf *out)
{
    int rc = chunk_begin(s, out);
    if (!rc)
        rc = tg_buf_printf(out, "{\"tool_calls\":[{\"index\":%lld,\"function\":{\"arguments\":",
                           (long long)(s->tools - 1));
    if (!rc) rc = put(out, args);
    if (!rc) rc = tg_buf_add_lit(out, "}}]}");
    s->args_sent = true;
    return rc ? rc : chunk_end(s, out, NULL, NULL);
}

static int ao_tool_start(tg_xstream *s, tg_json_val block, tg_buf *out)
{
    tg_json_val id = member(block, "id"), name = member(block, "name"),
                input = member(block, "input");
    if (!nonempty_str(id) || !nonempty_str(name))
        return fail(s, "a tool_use block without an id or a name");
    if (!absent(input) && input.type != TG_JSON_OBJECT)
        return fail(s, "a tool_use block whose input is not an object");
    s->open = TG_XS_TOOL;
    int rc = chunk_begin(s, out);
    if (!rc)
        rc = tg_buf_printf(out, "{\"tool_calls\":[{\"index\":%lld,\"id\":", (long long)s->tools++);
    if (!rc) rc = put(out, raw_of(id));
    if (!rc) rc = tg_buf_add_lit(out, ",\"type\":\"function\",\"function\":{\"name\":");
    if (!rc) rc = put(out, raw_of(name));
    if (!rc) rc = tg_buf_add_lit(out, ",\"arguments\":");
    /* streams start tools with input {}; an input given whole is the arguments */
    s->args_sent = carries(input);
    if (!rc)
        rc = put(out, s->args_sent ? text_of(tg_str_make(input.p, input.n)) : text_of(TG_STR("")));
    if (!rc) rc = tg_buf_add_lit(out, "}}]}");
    return rc ? rc : chunk_end(s, out, NULL, NULL);
}

static int ao_block_start(tg_xstream *s, tg_json_val ev, tg_buf *out)
{
    int64_t index;
    if (s->open != TG_XS_NONE) return fail(s, "content_block_start while another block is open");
    if (s->finish_seen) return fail(s, "content_block_start after message_delta");
    if (tg_json_int(member(ev, "index"), &index) || index != s->blocks)
        return fail(s, "content_block_start with an index out of order");
    tg_json_val block = member(ev, "content_block"), type = member(block, "type");
    s->blocks++;
    if (is(type, "text")) {
        tg_json_val text = member(block, "text");
        if (text.type != TG_JSON_STRING) return fail(s, "a text block without text");
        s->open = TG_XS_TEXT;
        return nonempty_str(text) ? ao_text(s, text, out) : TG_OK;
    }
    if (is(type, "tool_use")) return ao_tool_start(s, block, out);
    if (is(type, "thinking") || is(type, "redacted_thinking"))
        return fail(
            s, "the provider sent a thinking block, which an OpenAI chat completion cannot carry");
    return fail(
        s, "the provider sent a content block of a kind an OpenAI chat completion cannot carry "
           "(server tools, tool results, containers)");
}

/* Checks that ev's index names the open block. */
static bool names_open_block(const tg_xstream *s, tg_json_val ev)
{
    int64_t index;
    return s->open != TG_XS_NONE && !tg_json_int(member(ev, "index"), &index) &&
           index == s->blocks - 1;
}

static int ao_block_delta(tg_xstream *s, tg_json_val ev, tg_buf *out)
{
    if (!names_open_block(s, ev))
        return fail(s, "content_block_delta for a block that is not open");
    tg_json_val d = member(ev, "delta"), type = member(d, "type");
    if (is(type, "text_delta")) {
        tg_json_val text = member(d, "text");
        if (s->open != TG_XS_TEXT || text.type != TG_JSON_STRING)
            return fail(s, "a text_delta that does not fit its block");
        return nonempty_str(text) ? ao_text(s, text, out) : TG_OK;
    }
    if (is(type, "input_json_delta")) {
        tg_json_val pj = member(d, "partial_json");
        if (s->open != TG_XS_TOOL || pj.type != TG_JSON_STRING)
            return fail(s, "an input_json_delta that does not fit its block");
        return nonempty_str(pj) ? ao_args(s, raw_of(pj), out) : TG_OK;
    }
    if (is(type, "thinking_delta") || is(type, "signature_delta"))
        return fail(s, "the provider sent thinking, which an OpenAI chat completion cannot carry");
    if (is(type, "citations_delta"))
        return fail(s, "the provider sent citations, which an OpenAI chat completion cannot carry");
    return fail(s, "the provider sent a content_block_delta of a kind the gateway does not know");
}

static int ao_block_stop(tg_xstream *s, tg_json_val ev, tg_buf *out)
{
    if (!names_open_block(s, ev)) return fail(s, "content_block_stop for a block that is not open");
    bool empty_tool = s->open == TG_XS_TOOL && !s->args_sent;
    s->open = TG_XS_NONE;
    /* a tool without input: "{}", so the client's JSON.parse works */
    return empty_tool ? ao_args(s, text_of(TG_STR("{}")), out) : TG_OK;
}

static const char *ao_finish_reason(tg_json_val stop)
{
    static const char *const map[][2] = {
        {"end_turn", "stop"},          {"stop_sequence", "stop"},
        {"max_tokens", "length"},      {"tool_use", "tool_calls"},
        {"refusal", "content_filter"}, {"model_context_window_exceeded", "length"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (is(stop, map[i][0])) return map[i][1];
    return NULL;
}

static int ao_message_delta(tg_xstream *s, tg_json_val ev, tg_buf *out)
{
    if (s->open != TG_XS_NONE) return fail(s, "message_delta while a block is open");
    if (s->finish_seen) return fail(s, "a second message_delta");
    tg_json_val stop = member(member(ev, "delta"), "stop_reason");
    const char *finish = ao_finish_reason(stop);
    if (is(stop, "pause_turn"))
        return fail(s,
                    "the provider paused its turn (pause_turn, server tools), which an OpenAI chat "
                    "completion cannot carry");
    if (!finish) return fail(s, "message_delta without a stop_reason the gateway knows");
    s->finish_seen = true;
    tg_anthropic_usage(member(ev, "usage"), &s->usage);
    return chunk(s, out, TG_STR("{}"), finish);
}

static int ao_usage_chunk(tg_xstream *s, tg_buf *out)
{
    const tg_usage *u = &s->usage;
    int rc = tg_buf_add_lit(out, "data: ");
    if (!rc) rc = tg_buf_add_str(out, tg_buf_str(&s->head));
    if (!rc)
        rc =
            tg_buf_printf(out,
                          "\"choices\":[],\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":"
                          "%lld,\"total_tokens\":%lld,\"prompt_tokens_details\":{\"cached_tokens\":"
                          "%lld}}}\n\n",
                          (long long)u->prompt, (long long)u->completion, (long long)u->total,
                          (long long)u->cached);
    return rc;
}

static int ao_message_stop(tg_xstream *s, tg_buf *out)
{
    if (!s->finish_seen) return fail(s, "message_stop before message_delta");
    s->phase = TG_XS_ENDED;
    return s->include_usage ? ao_usage_chunk(s, out) : TG_OK;
}

/* data: {"error":{"message":M,"type":T,"param":null,"code":C}} */
static int oai_error(tg_buf *out, jstr msg, jstr type, const char *code)
{
    int rc = tg_buf_add_lit(out, "data: {\"error\":{\"message\":");
    if (!rc) rc = put(out, msg);
    if (!rc) rc = tg_buf_add_lit(out, ",\"type\":");
    if (!rc) rc = put(out, type);
    if (!rc) rc = tg_buf_add_lit(out, ",\"param\":null,\"code\":");
    if (!rc) rc = code ? tg_jsonw_str(out, tg_str_c(code)) : tg_buf_add_lit(out, "null");
    return rc ? rc : tg_buf_add_lit(out, "}}\n\n");
}

static int ao_error(tg_xstream *s, tg_json_val ev, tg_buf *out)
{
    tg_json_val e = member(ev, "error"), msg = member(e, "message"), type = member(e, "type");
    s->phase = TG_XS_FAILED;
    return oai_error(
        out, msg.type == TG_JSON_STRING ? raw_of(msg) : text_of(TG_STR("the provider failed")),
        type.type == TG_JSON_STRING ? raw_of(type) : text_of(TG_STR("api_error")), NULL);
}

static int ao_event(tg_xstream *s, tg_json_val ev, tg_buf *out)
{
    tg_json_val type = member(ev, "type");
    if (type.type != TG_JSON_STRING) return fail(s, "an event without a type");
    if (is(type, "message_start")) {
        tg_json_val msg = member(ev, "message");
        if (s->started) return fail(s, "a second message_start");
        if (msg.type != TG_JSON_OBJECT) return fail(s, "message_start without a message");
        tg_anthropic_usage(member(msg, "usage"), &s->usage);
        s->started = true;
        return chunk(s, out, ROLE_DELTA, NULL);
    }
    if (is(type, "error")) return ao_error(s, ev, out);
    bool known = is(type, "content_block_start") || is(type, "content_block_delta") ||
                 is(type, "content_block_stop") || is(type, "message_delta") ||
                 is(type, "message_stop");
    if (!known) return TG_OK; /* ping, and types added later (Anthropic's versioning policy) */
    if (!s->started) return fail(s, "an event before message_start");
    if (is(type, "content_block_start")) return ao_block_start(s, ev, out);
    if (is(type, "content_block_delta")) return ao_block_delta(s, ev, out);
    if (is(type, "content_block_stop")) return ao_block_stop(s, ev, out);
    if (is(type, "message_delta")) return ao_message_delta(s, ev, out);
    return ao_message_stop(s, out);
}

static int ao_cut(tg_xstream *s, tg_str why, tg_buf *out)
{
    int rc = TG_OK;
    if (!s->started) rc = chunk(s, out, ROLE_DELTA, NULL);
    s->started = true;
    if (!rc) rc = chunk_begin(s, out);
    if (!rc) rc = tg_buf_add_lit(out, "{}");
    return rc ? rc : chunk_end(s, out, "length", &why);
}

/* ---- OpenAI upstream -> Anthropic client ------------------------------- */

/* event: NAME\ndata: {"type":"NAME" ... then ev_end. */
static int ev_begin(tg_buf *out, const char *name)
{
    return tg_buf_printf(out, "event: %s\ndata: {\"type\":\"%s\"", name, name);
}

static int ev_end(tg_buf *out)
{
    return tg_buf_add_lit(out, "}\n\n");
}

static int oa_start(tg_xstream *s, tg_buf *out)
{
    if (s->started) return TG_OK;
    s->started = true;
    int rc = ev_begin(out, "message_start");
    if (!rc) rc = tg_buf_add_lit(out, ",\"message\":");
    if (!rc) rc = tg_buf_add_str(out, tg_buf_str(&s->head));
    return rc ? rc : ev_end(out);
}

static int oa_block_stop(tg_xstream *s, tg_buf *out)
{
    if (s->open == TG_XS_TOOL) s->calls[s->live].state = CALL_CLOSED;
    s->open = TG_XS_NONE;
    int rc = ev_begin(out, "content_block_stop");
    if (!rc) rc = tg_buf_printf(out, ",\"index\":%lld", (long long)(s->blocks - 1));
    return rc ? rc : ev_end(out);
}

static int oa_delta(tg_xstream *s, tg_buf *out, const char *kind, const char *field, jstr v)
{
    int rc = ev_begin(out, "content_block_delta");
    if (!rc)
        rc = tg_buf_printf(out, ",\"index\":%lld,\"delta\":{\"type\":\"%s\",\"%s\":",
                           (long long)(s->blocks - 1), kind, field);
    if (!rc) rc = put(out, v);
    if (!rc) rc = tg_buf_add_char(out, '}');
    return rc ? rc : ev_end(out);
}

static int oa_text(tg_xstream *s, tg_json_val text, tg_buf *out)
{
    int rc = TG_OK;
    if (s->finish_seen) return fail(s, "content after finish_reason");
    if (s->open == TG_XS_TOOL) rc = oa_block_stop(s, out);
    if (!rc && s->open == TG_XS_NONE) {
        s->open = TG_XS_TEXT;
        rc = ev_begin(out, "content_block_start");
        if (!rc)
            rc = tg_buf_printf(
                out, ",\"index\":%lld,\"content_block\":{\"type\":\"text\",\"text\":\"\"}",
                (long long)s->blocks++);
        if (!rc) rc = ev_end(out);
    }
    return rc ? rc : oa_delta(s, out, "text_delta", "text", raw_of(text));
}

/* Opens call c's block and writes what it held. */
static int oa_call_start(tg_xstream *s, size_t c, tg_buf *out)
{
    tg_xs_call *call = &s->calls[c];
    call->state = CALL_LIVE;
    s->open = TG_XS_TOOL;
    s->live = c;
    s->tools++;
    int rc = ev_begin(out, "content_block_start");
    if (!rc)
        rc = tg_buf_printf(out, ",\"index\":%lld,\"content_block\":{\"type\":\"tool_use\",\"id\":",
                           (long long)s->blocks++);
    if (!rc) rc = tg_jsonw_str(out, tg_buf_str(&call->id));
    if (!rc) rc = tg_buf_add_lit(out, ",\"name\":");
    if (!rc) rc = tg_jsonw_str(out, tg_buf_str(&call->name));
    if (!rc) rc = tg_buf_add_lit(out, ",\"input\":{}}");
    if (!rc) rc = ev_end(out);
    if (!rc && call->args.n)
        rc = oa_delta(s, out, "input_json_delta", "partial_json", text_of(tg_buf_str(&call->args)));
    s->held -= call->args.n;
    tg_buf_release(&call->args);
    return rc;
}

static bool ready(const tg_xs_call *c)
{
    return c->id.n && c->name.n;
}

/* With no block open, starts the first call not yet closed when it can. */
static int oa_advance(tg_xstream *s, tg_buf *out)
{
    if (s->open != TG_XS_NONE) return TG_OK;
    for (size_t i = 0; i < s->ncalls; i++) {
        if (s->calls[i].state == CALL_CLOSED) continue;
        return ready(&s->calls[i]) ? oa_call_start(s, i, out) : TG_OK;
    }
    return TG_OK;
}

/* Takes an id or name: the first non-empty value sticks; another differing
 * one is refused. */
static int oa_take_name(tg_xstream *s, tg_buf *dst, tg_json_val v)
{
    if (absent(v) || (v.type == TG_JSON_STRING && v.n == 2)) return TG_OK;
    if (v.type != TG_JSON_STRING) return fail(s, "a tool call id or name that is not a string");
    tg_buf_clear(&s->scratch);
    int rc = tg_json_str_decode(v, &s->scratch);
    if (rc == TG_ETOOBIG) s->why = "a tool call id or name longer than the gateway keeps";
    if (rc) return rc;
    if (!dst->n) return tg_buf_add_str(dst, tg_buf_str(&s->scratch));
    if (!tg_str_eq(tg_buf_str(dst), tg_buf_str(&s->scratch)))
        return fail(s, "a tool call whose id or name changed mid-stream");
    return TG_OK;
}

/* The call with upstream index `index`, added when new. */
static int oa_call(tg_xstream *s, int64_t index, size_t *c)
{
    for (*c = 0; *c < s->ncalls; (*c)++)
        if (s->calls[*c].index == index) return TG_OK;
    if (s->ncalls == TG_XS_MAX_CALLS) {
        s->why = "more tool calls than the gateway translates in one answer";
        return TG_ETOOBIG;
    }
    tg_xs_call *calls = realloc(s->calls, (s->ncalls + 1) * sizeof *calls);
    if (!calls) return TG_ENOMEM;
    s->calls = calls;
    tg_xs_call *call = &calls[s->ncalls++];
    call->index = index;
    call->state = CALL_HELD;
    tg_buf_init(&call->id, TG_XS_MAX_NAME);
    tg_buf_init(&call->name, TG_XS_MAX_NAME);
    tg_buf_init(&call->args, TG_XS_MAX_HELD);
    return TG_OK;
}

static int oa_args(tg_xstream *s, size_t c, tg_json_val args, tg_buf *out)
{
    tg_xs_call *call = &s->calls[c];
    if (call->state == CALL_CLOSED)
        return fail(s, "arguments for a tool call that was already closed");
    if (call->state == CALL_LIVE)
        return oa_delta(s, out, "input_json_delta", "partial_json", raw_of(args));
    size_t n0 = call->args.n;
    int rc = tg_json_str_decode(args, &call->args);
    if (!rc && s->held + (call->args.n - n0) > TG_XS_MAX_HELD) rc = TG_ETOOBIG;
    if (rc == TG_ETOOBIG) {
        call->args.n = n0;
        s->why = "tool call arguments held back past the gateway's cap";
        return rc;
    }
    if (!rc) s->held += call->args.n - n0;
    return rc;
}

static int oa_tool_delta(tg_xstream *s, tg_json_val tc, tg_buf *out)
{
    int64_t index;
    size_t c;
    if (s->finish_seen) return fail(s, "a tool call after finish_reason");
    if (tc.type != TG_JSON_OBJECT || tg_json_int(member(tc, "index"), &index) || index < 0)
        return fail(s, "a tool call delta without an index");
    tg_json_val type = member(tc, "type"), fn = member(tc, "function");
    if (!absent(type) && !is(type, "function"))
        return fail(
            s,
            "a tool call of a kind other than function, which an Anthropic message cannot carry");
    if (!absent(fn) && fn.type != TG_JSON_OBJECT)
        return fail(s, "a tool call whose function is not an object");
    tg_json_val args = member(fn, "arguments");
    if (!absent(args) && args.type != TG_JSON_STRING)
        return fail(s, "tool call arguments that are not a string");
    int rc = oa_call(s, index, &c);
    if (!rc) rc = oa_take_name(s, &s->calls[c].id, member(tc, "id"));
    if (!rc) rc = oa_take_name(s, &s->calls[c].name, member(fn, "name"));
    if (!rc && s->open == TG_XS_TEXT) rc = oa_block_stop(s, out);
    if (!rc && nonempty_str(args)) rc = oa_args(s, c, args, out);
    return rc ? rc : oa_advance(s, out);
}

/* Closes the open block and writes every call not yet written, whole; a
 * call without id or name is refused, or left out when cut. */
static int oa_close_all(tg_xstream *s, bool cut, tg_buf *out)
{
    int rc = s->open != TG_XS_NONE ? oa_block_stop(s, out) : TG_OK;
    for (size_t i = 0; !rc && i < s->ncalls; i++) {
        if (s->calls[i].state == CALL_CLOSED) continue;
        if (!ready(&s->calls[i])) {
            if (!cut) return fail(s, "a tool call without an id or a name");
            s->calls[i].state = CALL_CLOSED;
            continue;
        }
        rc = oa_call_start(s, i, out);
        if (!rc) rc = oa_block_stop(s, out);
    }
    return rc;
}

static int oa_finish(tg_xstream *s, tg_json_val fr, tg_buf *out)
{
    static const char *const map[][2] = {
        {"stop", "end_turn"},
        {"length", "max_tokens"},
        {"tool_calls", "tool_use"},
        {"content_filter", "refusal"},
    };
    if (s->finish_seen) return fail(s, "a second finish_reason");
    for (size_t i = 0; !s->stop && i < sizeof map / sizeof map[0]; i++)
        if (is(fr, map[i][0])) s->stop = map[i][1];
    if (!s->stop)
        return fail(s, "a finish_reason the gateway does not know (function_call, or newer)");
    s->finish_seen = true;
    return oa_close_all(s, false, out);
}

static int oa_delta_members(tg_xstream *s, tg_json_val d, tg_buf *out)
{
    if (carries(member(d, "function_call")))
        return fail(
            s,
            "a function_call (the deprecated functions API), which the gateway does not translate");
    if (carries(member(d, "reasoning_content")) || carries(member(d, "reasoning")))
        return fail(
            s,
            "the provider sent reasoning, which the gateway does not translate to thinking blocks");
    if (carries(member(d, "audio")))
        return fail(s, "the provider sent audio, which an Anthropic message cannot carry");
    tg_json_val content = member(d, "content"), refusal = member(d, "refusal"),
                tcs = member(d, "tool_calls");
    if ((!absent(content) && content.type != TG_JSON_STRING) ||
        (!absent(refusal) && refusal.type != TG_JSON_STRING))
        return fail(s, "a delta whose content is not a string");
    if (!absent(tcs) && tcs.type != TG_JSON_ARRAY)
        return fail(s, "a delta whose tool_calls is not an array");
    int rc = nonempty_str(content) ? oa_text(s, content, out) : TG_OK;
    if (!rc && nonempty_str(refusal)) rc = oa_text(s, refusal, out);
    tg_json_iter it = tg_json_iter_init(tcs);
    tg_json_val k, tc;
    while (!rc && tcs.type == TG_JSON_ARRAY && tg_json_iter_next(&it, &k, &tc))
        rc = oa_tool_delta(s, tc, out);
    return rc;
}

static int oa_choice(tg_xstream *s, tg_json_val choice, tg_buf *out)
{
    int64_t index;
    if (tg_json_int(member(choice, "index"), &index) || index != 0)
        return fail(s, "a chunk with a choice other than index 0");
    tg_json_val d = member(choice, "delta"), fr = member(choice, "finish_reason");
    if (!absent(d) && d.type != TG_JSON_OBJECT)
        return fail(s, "a choice whose delta is not an object");
    int rc = d.type == TG_JSON_OBJECT ? oa_delta_members(s, d, out) : TG_OK;
    if (!rc && !absent(fr))
        rc = fr.type == TG_JSON_STRING ? oa_finish(s, fr, out)
                                       : fail(s, "a finish_reason that is not a string");
    return rc;
}

/* Anthropic's error types pass; anything else is an api_error. */
static tg_str anthropic_error_type(tg_str t)
{
    static const char *const kept[] = {"invalid_request_error", "authentication_error",
                                       "permission_error",      "not_found_error",
                                       "rate_limit_error",      "overloaded_error"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (tg_str_eq(t, tg_str_c(kept[i]))) return t;
    return TG_STR("api_error");
}

static int anthropic_error(tg_buf *out, tg_str type, jstr msg)
{
    int rc = ev_begin(out, "error");
    if (!rc) rc = tg_buf_add_lit(out, ",\"error\":{\"type\":");
    if (!rc) rc = tg_jsonw_str(out, anthropic_error_type(type));
    if (!rc) rc = tg_buf_add_lit(out, ",\"message\":");
    if (!rc) rc = put(out, msg);
    if (!rc) rc = tg_buf_add_char(out, '}');
    return rc ? rc : ev_end(out);
}

static int oa_error(tg_xstream *s, tg_json_val e, tg_buf *out)
{
    tg_json_val msg = e.type == TG_JSON_OBJECT ? member(e, "message") : e;
    tg_str type = TG_STR("");
    tg_json_str_view(member(e, "type"), &type);
    s->phase = TG_XS_FAILED;
    return anthropic_error(out, type,
                           msg.type == TG_JSON_STRING ? raw_of(msg)
                                                      : text_of(TG_STR("the provider failed")));
}

static int oa_message_delta(tg_xstream *s, const char *stop, const tg_str *why, tg_buf *out)
{
    const tg_usage *u = &s->usage;
    int64_t input = u->present ? u->prompt - u->cached - u->cache_write : s->estimate;
    if (!strcmp(stop, "end_turn") && s->tools)
        stop = "tool_use"; /* servers that say stop after tools */
    int rc = ev_begin(out, "message_delta");
    if (!rc)
        rc = tg_buf_printf(
            out,
            ",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},\"usage\":{"
            "\"input_tokens\":%lld,\"output_tokens\":%lld,\"cache_read_input_tokens\":"
            "%lld,\"cache_creation_input_tokens\":%lld}",
            stop, (long long)(input > 0 ? input : 0), (long long)u->completion,
            (long long)u->cached, (long long)u->cache_write);
    if (!rc && why) rc = put_stopped(out, *why);
    return rc ? rc : ev_end(out);
}

static int oa_event(tg_xstream *s, tg_json_val ev, tg_buf *out)
{
    tg_json_val e = member(ev, "error"), choices = member(ev, "choices");
    if (!absent(e)) return oa_error(s, e, out);
    if (!absent(choices) && choices.type != TG_JSON_ARRAY)
        return fail(s, "a chunk whose choices is not an array");
    tg_openai_usage(ev, &s->usage);
    int rc = oa_start(s, out);
    tg_json_iter it = tg_json_iter_init(choices);
    tg_json_val k, choice;
    while (!rc && choices.type == TG_JSON_ARRAY && tg_json_iter_next(&it, &k, &choice))
        rc = choice.type == TG_JSON_OBJECT ? oa_choice(s, choice, out)
                                           : fail(s, "a choice that is not an object");
    return rc;
}

static int oa_done(tg_xstream *s, tg_buf *out)
{
    int rc = oa_start(s, out);
    if (!rc && !s->finish_seen) return fail(s, "the stream ended without a finish_reason");
    s->phase = TG_XS_ENDED;
    return rc ? rc : oa_message_delta(s, s->stop, NULL, out);
}

static int oa_cut(tg_xstream *s, tg_str why, tg_buf *out)
{
    int rc = oa_start(s, out);
    if (!rc) rc = oa_close_all(s, true, out);
    return rc ? rc : oa_message_delta(s, "max_tokens", &why, out);
}

/* ---- the contract ------------------------------------------------------ */

static int render_head(tg_xstream *s, tg_str model, tg_str id, int64_t created)
{
    int rc = tg_buf_add_lit(&s->head, "{\"id\":");
    if (!rc) rc = tg_jsonw_str(&s->head, id);
    if (s->dir == TG_XS_ANTHROPIC_TO_OPENAI) {
        if (!rc)
            rc = tg_buf_printf(&s->head,
                               ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":",
                               (long long)created);
        if (!rc) rc = tg_jsonw_str(&s->head, model);
        return rc ? rc : tg_buf_add_char(&s->head, ',');
    }
    if (!rc)
        rc = tg_buf_add_lit(&s->head, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    if (!rc) rc = tg_jsonw_str(&s->head, model);
    if (!rc)
        rc = tg_buf_printf(
            &s->head,
            ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
            "\"input_tokens\":%lld,\"output_tokens\":0,\"cache_creation_input_tokens\":0,"
            "\"cache_read_input_tokens\":0}}",
            (long long)s->estimate);
    return rc;
}

int tg_xstream_init(tg_xstream *s, tg_xs_dir dir, tg_str client_model, tg_str id,
                    bool include_usage, int64_t created, int64_t input_estimate)
{
    memset(s, 0, sizeof *s);
    s->dir = dir;
    s->include_usage = include_usage;
    s->estimate = input_estimate > 0 ? input_estimate : 0;
    tg_buf_init(&s->head, HEAD_MAX);
    tg_buf_init(&s->scratch, TG_XS_MAX_NAME);
    if (client_model.n > TG_XS_MAX_NAME || id.n > TG_XS_MAX_NAME) return TG_ETOOBIG;
    return render_head(s, client_model, id, created);
}

void tg_xstream_release(tg_xstream *s)
{
    for (size_t i = 0; i < s->ncalls; i++) {
        tg_buf_release(&s->calls[i].id);
        tg_buf_release(&s->calls[i].name);
        tg_buf_release(&s->calls[i].args);
    }
    free(s->calls);
    s->calls = NULL;
    s->ncalls = 0;
    tg_buf_release(&s->head);
    tg_buf_release(&s->scratch);
}

/* Takes back what a failed call appended. */
static int undo(tg_xstream *s, tg_buf *out, size_t n0, int rc)
{
    if (!rc) return TG_OK;
    s->refused = true;
    out->n = n0;
    if (out->p) out->p[n0] = '\0';
    if (rc == TG_ETOOBIG && !s->why) s->why = "a translated event larger than the gateway allows";
    if (rc == TG_ENOMEM) s->why = "the gateway ran out of memory";
    return rc;
}

int tg_xstream_event(tg_xstream *s, tg_str data, tg_buf *out)
{
    size_t n0 = out->n;
    int rc;
    s->why = NULL;
    if (data.n == 0) return TG_OK;
    if (s->phase != TG_XS_OPEN || s->refused)
        return fail(s, "an event after the end of the stream or a refused one");
    if (s->dir == TG_XS_OPENAI_TO_ANTHROPIC && tg_str_eq(data, TG_STR("[DONE]"))) {
        rc = oa_done(s, out);
    } else if (tg_json_validate(data.p, data.n, 0, NULL, NULL)) {
        rc = fail(s, "an event that is not valid JSON");
    } else {
        tg_json_val ev = tg_json_root(data.p, data.n);
        if (ev.type != TG_JSON_OBJECT)
            rc = fail(s, "an event that is not a JSON object");
        else
            rc = s->dir == TG_XS_ANTHROPIC_TO_OPENAI ? ao_event(s, ev, out) : oa_event(s, ev, out);
    }
    return undo(s, out, n0, rc);
}

int tg_xstream_cut(tg_xstream *s, tg_str why, tg_buf *out)
{
    size_t n0 = out->n;
    s->why = NULL;
    if (s->phase != TG_XS_OPEN || s->refused) return fail(s, "the stream is not open");
    int rc = s->dir == TG_XS_ANTHROPIC_TO_OPENAI ? ao_cut(s, why, out) : oa_cut(s, why, out);
    if (!rc) s->phase = TG_XS_ENDED;
    return undo(s, out, n0, rc);
}

int tg_xstream_finish(tg_xstream *s, tg_buf *out)
{
    s->why = NULL;
    if (s->phase != TG_XS_ENDED || s->refused) return fail(s, "the stream has not ended");
    size_t n0 = out->n;
    int rc =
        s->dir == TG_XS_ANTHROPIC_TO_OPENAI
            ? tg_buf_add_lit(out, "data: [DONE]\n\n")
            : tg_buf_add_lit(out, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    if (!rc) s->phase = TG_XS_FINISHED;
    return undo(s, out, n0, rc);
}

int tg_xstream_error(tg_xstream *s, const char *type, const char *code, tg_str msg, tg_buf *out)
{
    s->why = NULL;
    if (s->phase == TG_XS_FINISHED || s->phase == TG_XS_FAILED)
        return fail(s, "the stream is over");
    size_t n0 = out->n;
    int rc = s->dir == TG_XS_ANTHROPIC_TO_OPENAI
                 ? oai_error(out, text_of(msg), text_of(tg_str_c(type)), code)
                 : anthropic_error(out, tg_str_c(type), text_of(msg));
    if (!rc) s->phase = TG_XS_FAILED;
    return undo(s, out, n0, rc);
}
