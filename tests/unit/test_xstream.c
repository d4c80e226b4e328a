/* Stream translation (route/adapters/xstream.c), both ways: realistic
 * upstream streams are split into events by the real SSE splitter, in
 * pieces of every size, translated, and the client's stream is read back
 * the way the official SDKs read it (every data line parsed as JSON,
 * Anthropic events dispatched on their `event:` line, text, tool calls and
 * usage reassembled), then compared with what the upstream sent.
 *
 * With TG_XSTREAM_DUMP=dir set, the translated streams of the realistic
 * cases are also written to dir/<name>.sse, to be fed to the SDKs by hand
 * (a fetch that answers with the file). */
#include "route/adapters/xstream.h"
#include "http/sse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

/* One upstream event in each dialect. */
#define A(type, json) "event: " type "\ndata: " json "\n\n"
#define O(json) "data: " json "\n\n"

#define A2O TG_XS_ANTHROPIC_TO_OPENAI
#define O2A TG_XS_OPENAI_TO_ANTHROPIC
#define CREATED 1700000000
#define MAXT 8

/* ---- reading the client's stream back --------------------------------- */

/* What a client reassembles. */
typedef struct {
    tg_xs_dir dir;
    tg_buf text, id[MAXT], name[MAXT], args[MAXT];
    int ntools;
    char finish[40], error_type[40];
    bool role, done, error, stopped, usage;
    int64_t prompt, completion, cached, total;       /* the OpenAI usage chunk */
    int64_t start_input, input, output, read, write; /* Anthropic's usage */
    int usage_nulls, next_block, open_block;         /* open_block -1: none */
    bool open_tool;
} client;

static void client_init(client *c, tg_xs_dir dir)
{
    memset(c, 0, sizeof *c);
    c->dir = dir;
    c->open_block = -1;
    tg_buf_init(&c->text, 1 << 24);
    for (int i = 0; i < MAXT; i++) {
        tg_buf_init(&c->id[i], 4096);
        tg_buf_init(&c->name[i], 4096);
        tg_buf_init(&c->args[i], 1 << 24);
    }
}

static void client_release(client *c)
{
    tg_buf_release(&c->text);
    for (int i = 0; i < MAXT; i++) {
        tg_buf_release(&c->id[i]);
        tg_buf_release(&c->name[i]);
        tg_buf_release(&c->args[i]);
    }
}

static tg_json_val get(tg_json_val obj, const char *key)
{
    return tg_json_get(obj, tg_str_c(key));
}

static bool is(tg_json_val v, const char *lit)
{
    tg_buf b;
    tg_buf_init(&b, 1 << 20);
    bool eq = v.type == TG_JSON_STRING && !tg_json_str_decode(v, &b) &&
              tg_str_eq(tg_buf_str(&b), tg_str_c(lit));
    tg_buf_release(&b);
    return eq;
}

static void add_str(tg_buf *b, tg_json_val v)
{
    assert_int_equal(v.type, TG_JSON_STRING);
    assert_int_equal(tg_json_str_decode(v, b), 0);
}

static int64_t num(tg_json_val obj, const char *key)
{
    int64_t v;
    assert_int_equal(tg_json_int(get(obj, key), &v), 0);
    return v;
}

static void copy_str(char *dst, size_t n, tg_json_val v)
{
    tg_str t;
    assert_true(tg_json_str_view(v, &t) && t.n < n);
    memcpy(dst, t.p, t.n);
    dst[t.n] = '\0';
}

static void oai_tool_delta(client *c, tg_json_val tc)
{
    int64_t k = num(tc, "index");
    assert_true(k >= 0 && k < MAXT && k <= c->ntools);
    if (k == c->ntools) { /* a new call: id, type, name and "" arguments come first */
        c->ntools++;
        assert_true(is(get(tc, "type"), "function"));
        add_str(&c->id[k], get(tc, "id"));
        add_str(&c->name[k], get(get(tc, "function"), "name"));
    } else {
        assert_int_equal(get(tc, "id").type, TG_JSON_NONE);
    }
    add_str(&c->args[k], get(get(tc, "function"), "arguments"));
}

static void oai_choice(client *c, tg_json_val ch)
{
    assert_int_equal(num(ch, "index"), 0);
    tg_json_val d = get(ch, "delta"), fr = get(ch, "finish_reason");
    assert_int_equal(d.type, TG_JSON_OBJECT);
    assert_true(c->role || is(get(d, "role"), "assistant"));
    c->role = true;
    if (get(d, "content").type == TG_JSON_STRING) add_str(&c->text, get(d, "content"));
    tg_json_iter it = tg_json_iter_init(get(d, "tool_calls"));
    tg_json_val k, tc;
    while (get(d, "tool_calls").type == TG_JSON_ARRAY && tg_json_iter_next(&it, &k, &tc))
        oai_tool_delta(c, tc);
    if (fr.type == TG_JSON_STRING)
        copy_str(c->finish, sizeof c->finish, fr);
    else
        assert_int_equal(fr.type, TG_JSON_NULL);
}

static void oai_event(client *c, tg_json_val ev)
{
    if (get(ev, "error").type != TG_JSON_NONE) {
        c->error = true;
        copy_str(c->error_type, sizeof c->error_type, get(get(ev, "error"), "type"));
        assert_int_equal(get(get(ev, "error"), "message").type, TG_JSON_STRING);
        return;
    }
    assert_false(c->error);
    assert_true(is(get(ev, "id"), "chatcmpl-test") &&
                is(get(ev, "object"), "chat.completion.chunk"));
    assert_true(is(get(ev, "model"), "my-model") && num(ev, "created") == CREATED);
    tg_json_val u = get(ev, "usage"), choices = get(ev, "choices");
    c->stopped |= get(ev, "tollgate").type == TG_JSON_OBJECT;
    c->usage_nulls += u.type == TG_JSON_NULL;
    if (u.type == TG_JSON_OBJECT) {
        assert_false(c->usage);
        c->usage = true;
        assert_int_equal(choices.n, 2); /* [] */
        c->prompt = num(u, "prompt_tokens"), c->completion = num(u, "completion_tokens");
        c->total = num(u, "total_tokens"),
        c->cached = num(get(u, "prompt_tokens_details"), "cached_tokens");
        return;
    }
    tg_json_iter it = tg_json_iter_init(choices);
    tg_json_val k, ch;
    int n = 0;
    while (tg_json_iter_next(&it, &k, &ch))
        oai_choice(c, ch), n++;
    assert_int_equal(n, 1);
}

static void ant_block_start(client *c, tg_json_val ev)
{
    tg_json_val b = get(ev, "content_block");
    assert_int_equal(c->open_block, -1);
    assert_int_equal(num(ev, "index"), c->next_block);
    c->open_block = c->next_block++;
    c->open_tool = is(get(b, "type"), "tool_use");
    if (!c->open_tool) {
        assert_true(is(get(b, "type"), "text") && is(get(b, "text"), ""));
        return;
    }
    assert_true(c->ntools < MAXT);
    add_str(&c->id[c->ntools], get(b, "id"));
    add_str(&c->name[c->ntools], get(b, "name"));
    assert_int_equal(get(b, "input").n, 2); /* {} */
    c->ntools++;
}

static void ant_block_delta(client *c, tg_json_val ev)
{
    tg_json_val d = get(ev, "delta");
    assert_int_equal(num(ev, "index"), c->open_block);
    if (c->open_tool) {
        assert_true(is(get(d, "type"), "input_json_delta"));
        add_str(&c->args[c->ntools - 1], get(d, "partial_json"));
    } else {
        assert_true(is(get(d, "type"), "text_delta"));
        add_str(&c->text, get(d, "text"));
    }
}

static void ant_message_delta(client *c, tg_json_val ev)
{
    tg_json_val u = get(ev, "usage");
    assert_int_equal(c->open_block, -1);
    copy_str(c->finish, sizeof c->finish, get(get(ev, "delta"), "stop_reason"));
    assert_int_equal(get(get(ev, "delta"), "stop_sequence").type, TG_JSON_NULL);
    c->usage = true;
    c->input = num(u, "input_tokens"), c->output = num(u, "output_tokens");
    c->read = num(u, "cache_read_input_tokens"), c->write = num(u, "cache_creation_input_tokens");
    c->stopped |= get(ev, "tollgate").type == TG_JSON_OBJECT;
}

static void ant_event(client *c, tg_json_val ev)
{
    tg_json_val m = get(ev, "message");
    assert_false(c->done || c->error);
    if (is(get(ev, "type"), "message_start")) {
        assert_true(!c->role && is(get(m, "id"), "msg_test") && is(get(m, "model"), "my-model"));
        assert_true(is(get(m, "role"), "assistant") && get(m, "content").n == 2);
        c->start_input = num(get(m, "usage"), "input_tokens");
        c->role = true;
        return;
    }
    assert_true(c->role || is(get(ev, "type"), "error"));
    if (is(get(ev, "type"), "content_block_start"))
        ant_block_start(c, ev);
    else if (is(get(ev, "type"), "content_block_delta"))
        ant_block_delta(c, ev);
    else if (is(get(ev, "type"), "content_block_stop")) {
        assert_int_equal(num(ev, "index"), c->open_block);
        c->open_block = -1;
    } else if (is(get(ev, "type"), "message_delta"))
        ant_message_delta(c, ev);
    else if (is(get(ev, "type"), "message_stop"))
        c->done = true;
    else {
        assert_true(is(get(ev, "type"), "error"));
        c->error = true;
        copy_str(c->error_type, sizeof c->error_type, get(get(ev, "error"), "type"));
        assert_int_equal(get(get(ev, "error"), "message").type, TG_JSON_STRING);
    }
}

static int on_client_event(void *ud, tg_str raw, tg_str data)
{
    client *c = ud;
    if (data.n == 0) return 0; /* the charge comment */
    if (c->dir == A2O && tg_str_eq(data, TG_STR("[DONE]"))) {
        assert_false(c->done || c->error);
        c->done = true;
        return 0;
    }
    assert_int_equal(tg_json_validate(data.p, data.n, 0, NULL, NULL), 0);
    tg_json_val ev = tg_json_root(data.p, data.n);
    if (c->dir == A2O) {
        assert_false(c->done);
        oai_event(c, ev);
        return 0;
    }
    /* the Anthropic SDKs dispatch on the event line: it must name the type */
    tg_str type;
    assert_true(tg_json_str_view(get(ev, "type"), &type));
    assert_true(raw.n > 8 + type.n && !memcmp(raw.p, "event: ", 7) &&
                !memcmp(raw.p + 7, type.p, type.n));
    assert_int_equal(raw.p[7 + type.n], '\n');
    ant_event(c, ev);
    return 0;
}

static void client_read(client *c, tg_str stream)
{
    tg_sse sse;
    tg_sse_init(&sse, 1 << 24);
    assert_int_equal(tg_sse_feed(&sse, stream.p, stream.n, on_client_event, c), 0);
    assert_int_equal(tg_sse_pending(&sse), 0);
    tg_sse_release(&sse);
}

/* ---- feeding the translator ------------------------------------------- */

typedef struct {
    tg_xstream *xs;
    tg_buf *out;
    int rc;
} feed;

#define CHARGE ": tollgate charge=0.000123\n\n"

static int on_upstream_event(void *ud, tg_str raw, tg_str data)
{
    (void)raw;
    feed *f = ud;
    f->rc = tg_xstream_event(f->xs, data, f->out);
    if (f->rc) return 1;
    if (tg_xstream_phase(f->xs) != TG_XS_ENDED) return 0;
    /* where the gateway puts its charge comment, then the last event */
    assert_int_equal(tg_buf_add_lit(f->out, CHARGE), 0);
    assert_int_equal(tg_xstream_finish(f->xs, f->out), 0);
    return 0;
}

static void xs_init(tg_xstream *xs, tg_xs_dir dir, bool include_usage)
{
    assert_int_equal(tg_xstream_init(xs, dir, TG_STR("my-model"),
                                     dir == A2O ? TG_STR("chatcmpl-test") : TG_STR("msg_test"),
                                     include_usage, CREATED, 77),
                     0);
}

/* Translates an upstream stream fed in pieces of step bytes (0: whole);
 * returns the translator's first error. */
static int translate(tg_xstream *xs, const char *upstream, size_t step, tg_buf *out)
{
    tg_sse sse;
    feed f = {xs, out, 0};
    size_t n = strlen(upstream);
    if (!step) step = n;
    tg_sse_init(&sse, 1 << 24);
    for (size_t off = 0; off < n && !f.rc; off += step)
        tg_sse_feed(&sse, upstream + off, n - off < step ? n - off : step, on_upstream_event, &f);
    tg_sse_release(&sse);
    return f.rc;
}

static void dump(const char *name, tg_str s)
{
    const char *dir = getenv("TG_XSTREAM_DUMP");
    if (!dir) return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s.sse", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(s.p, 1, s.n, f);
    fclose(f);
}

/* Translates whole, checks that every split gives the same bytes, reads the
 * client's stream into c. */
static void run(const char *name, tg_xs_dir dir, bool include_usage, const char *upstream,
                client *c)
{
    tg_xstream xs;
    tg_buf whole;
    tg_buf_init(&whole, 1 << 24);
    xs_init(&xs, dir, include_usage);
    assert_int_equal(translate(&xs, upstream, 0, &whole), 0);
    assert_int_equal(tg_xstream_phase(&xs), TG_XS_FINISHED);
    tg_xstream_release(&xs);
    for (size_t step = 1; step < 200; step += step < 16 ? 1 : 37) {
        tg_buf piece;
        tg_buf_init(&piece, 1 << 24);
        xs_init(&xs, dir, include_usage);
        assert_int_equal(translate(&xs, upstream, step, &piece), 0);
        assert_true(tg_str_eq(tg_buf_str(&piece), tg_buf_str(&whole)));
        tg_xstream_release(&xs);
        tg_buf_release(&piece);
    }
    dump(name, tg_buf_str(&whole));
    client_init(c, dir);
    client_read(c, tg_buf_str(&whole));
    assert_true(c->done && !c->error);
    tg_buf_release(&whole);
}

static void assert_tool(const client *c, int k, const char *id, const char *name, const char *args)
{
    assert_true(k < c->ntools);
    assert_string_equal(c->id[k].p, id);
    assert_string_equal(c->name[k].p, name);
    assert_string_equal(c->args[k].p ? c->args[k].p : "", args);
}

/* ---- Anthropic upstream -> OpenAI client ------------------------------ */

#define A_START(in, read, write)                                                                   \
    A("message_start",                                                                             \
      "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01X\",\"type\":"                      \
      "\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\","                  \
      "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":" in                \
      ",\"cache_creation_input_tokens\":" write ",\"cache_read_input_tokens\":" read               \
      ",\"output_tokens\":1}}}")
#define A_TEXT_START(i)                                                                            \
    A("content_block_start", "{\"type\":\"content_block_start\",\"index\":" i                      \
                             ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
#define A_TEXT(i, t)                                                                               \
    A("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":" i                      \
                             ",\"delta\":{\"type\":\"text_delta\",\"text\":\"" t "\"}}")
#define A_TOOL_START(i, id, name)                                                                  \
    A("content_block_start", "{\"type\":\"content_block_start\",\"index\":" i                      \
                             ",\"content_block\":{\"type\":\"tool_use\",\"id\":\"" id              \
                             "\",\"name\":\"" name "\",\"input\":{}}}")
#define A_JSON(i, pj)                                                                              \
    A("content_block_delta",                                                                       \
      "{\"type\":\"content_block_delta\",\"index\":" i                                             \
      ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"" pj "\"}}")
#define A_STOP(i) A("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":" i "}")
#define A_DELTA(reason, out)                                                                       \
    A("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"" reason          \
                       "\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":" out "}}")
#define A_END A("message_stop", "{\"type\":\"message_stop\"}")
#define A_PING A("ping", "{\"type\": \"ping\"}")

static const char a_text[] = A_START("25", "0", "0") A_TEXT_START("0") A_PING A_TEXT("0", "Hello")
    A_TEXT("0", ", \\\"w\\u00f6rld\\\"\\n") A_TEXT("0", "")
        A_TEXT("0", " caf\xc3\xa9 \\ud83d\\ude00") A_STOP("0") A_DELTA("end_turn", "15") A_END;

static void test_a2o_text(void **state)
{
    (void)state;
    client c;
    run("a2o_text", A2O, false, a_text, &c);
    assert_string_equal(c.text.p, "Hello, \"w\xc3\xb6rld\"\n caf\xc3\xa9 \xf0\x9f\x98\x80");
    assert_string_equal(c.finish, "stop");
    assert_true(c.role && !c.usage && c.usage_nulls == 0 && c.ntools == 0);
    client_release(&c);

    /* the first chunk, byte for byte */
    tg_xstream xs;
    tg_buf out;
    tg_buf_init(&out, 4096);
    xs_init(&xs, A2O, false);
    assert_int_equal(translate(&xs, A_START("25", "0", "0"), 0, &out), 0);
    assert_string_equal(out.p,
                        "data: {\"id\":\"chatcmpl-test\",\"object\":\"chat.completion.chunk\","
                        "\"created\":1700000000,\"model\":\"my-model\",\"choices\":[{\"index\":0,"
                        "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
                        "\"finish_reason\":null}]}\n\n");
    assert_int_equal(tg_xstream_usage(&xs)->prompt, 25);
    tg_xstream_release(&xs);
    tg_buf_release(&out);
}

static void test_a2o_usage(void **state)
{
    (void)state;
    static const char s[] = A_START("10", "100", "5") A_TEXT_START("0") A_TEXT("0", "Hi")
        A_STOP("0") A("message_delta",
                      "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
                      "\"stop_sequence\":null},\"usage\":{\"output_tokens\":42,"
                      "\"input_tokens\":null,\"cache_read_input_tokens\":null}}") A_END;
    client c;
    run("a2o_usage", A2O, true, s, &c);
    assert_true(c.usage);
    assert_int_equal(c.prompt, 115);
    assert_int_equal(c.cached, 100);
    assert_int_equal(c.completion, 42);
    assert_int_equal(c.total, 157);
    assert_int_equal(c.usage_nulls, 3); /* every chunk but the usage chunk: role, text, finish */
    client_release(&c);

    tg_xstream xs;
    tg_buf out;
    tg_buf_init(&out, 1 << 16);
    xs_init(&xs, A2O, false);
    assert_int_equal(translate(&xs, s, 0, &out), 0);
    const tg_usage *u = tg_xstream_usage(&xs);
    assert_true(u->present && u->prompt == 115 && u->cached == 100 && u->cache_write == 5);
    assert_true(u->completion == 42 && u->total == 157);
    tg_xstream_release(&xs);
    tg_buf_release(&out);
}

static const char a_tools[] = A_START("300", "0", "0") A_TEXT_START("0")
    A_TEXT("0", "Let me check.") A_STOP("0") A_TOOL_START("1", "toolu_01A", "get_weather")
        A_JSON("1", "") A_JSON("1", "{\\\"ci") A_JSON("1", "ty\\\": \\\"Par")
            A_JSON("1", "is \\\\u00") A_JSON("1", "e9\\\"}") A_STOP("1")
                A_TOOL_START("2", "toolu_01B", "get_time") A_JSON("2", "{\\\"tz\\\":\\\"CET\\\"}")
                    A_STOP("2") A_TOOL_START("3", "toolu_01C", "now") A_STOP("3")
                        A_PING A_DELTA("tool_use", "88") A_END;

static void test_a2o_tools(void **state)
{
    (void)state;
    client c;
    run("a2o_tools", A2O, true, a_tools, &c);
    assert_string_equal(c.text.p, "Let me check.");
    assert_int_equal(c.ntools, 3);
    assert_tool(&c, 0, "toolu_01A", "get_weather", "{\"city\": \"Paris \\u00e9\"}");
    assert_tool(&c, 1, "toolu_01B", "get_time", "{\"tz\":\"CET\"}");
    assert_tool(&c, 2, "toolu_01C", "now", "{}"); /* no input: "{}" so it parses */
    assert_string_equal(c.finish, "tool_calls");
    assert_true(c.usage && c.prompt == 300 && c.completion == 88);
    client_release(&c);
}

static void test_a2o_stop_reasons(void **state)
{
    (void)state;
    static const char *const map[][2] = {
        {"end_turn", "stop"},          {"stop_sequence", "stop"},
        {"max_tokens", "length"},      {"tool_use", "tool_calls"},
        {"refusal", "content_filter"}, {"model_context_window_exceeded", "length"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        char s[2048];
        snprintf(s, sizeof s, "%s%s%s%s%s", A_START("1", "0", "0"), A_TEXT_START("0"), A_STOP("0"),
                 "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"", map[i][0]);
        strcat(s, "\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":3}}\n\n" A_END);
        client c;
        run("a2o_stop", A2O, false, s, &c);
        assert_string_equal(c.finish, map[i][1]);
        assert_int_equal(c.text.n, 0);
        client_release(&c);
    }
}

/* Feeds upstream whole; the translator must refuse it with rc, leaving a
 * readable stream (whole events only) and a reason. */
static void refused(tg_xs_dir dir, const char *upstream, int want)
{
    tg_xstream xs;
    tg_buf out;
    tg_buf_init(&out, 1 << 24);
    xs_init(&xs, dir, true);
    int rc = translate(&xs, upstream, 0, &out);
    if (rc != want) fail_msg("rc %d, want %d for: %s", rc, want, upstream);
    assert_true(tg_xstream_why(&xs)[0]);
    /* the caller then ends the stream with an error event, unless it is over;
     * nothing else is accepted */
    size_t n0 = out.n;
    assert_int_equal(tg_xstream_cut(&xs, TG_STR("x"), &out), TG_EINVAL);
    assert_int_equal(tg_xstream_finish(&xs, &out), TG_EINVAL);
    assert_int_equal(out.n, n0);
    if (tg_xstream_phase(&xs) == TG_XS_FINISHED) {
        assert_int_equal(tg_xstream_error(&xs, "upstream_error", NULL, TG_STR("x"), &out),
                         TG_EINVAL);
        tg_xstream_release(&xs);
        tg_buf_release(&out);
        return;
    }
    assert_int_equal(tg_xstream_error(&xs, "upstream_error", "upstream_malformed",
                                      tg_str_c(tg_xstream_why(&xs)), &out),
                     0);
    assert_true(out.n > n0);
    assert_int_equal(tg_xstream_phase(&xs), TG_XS_FAILED);
    client c;
    client_init(&c, dir);
    client_read(&c, tg_buf_str(&out));
    assert_true(c.error && !c.done);
    client_release(&c);
    tg_xstream_release(&xs);
    tg_buf_release(&out);
}

static void test_a2o_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        A_TEXT_START("0"),                                          /* before message_start */
        A_START("1", "0", "0") A_START("1", "0", "0"),              /* twice */
        A_START("1", "0", "0") A_TEXT("0", "x"),                    /* no block open */
        A_START("1", "0", "0") A_TEXT_START("1"),                   /* index skips */
        A_START("1", "0", "0") A_TEXT_START("0") A_TEXT_START("1"), /* nested */
        A_START("1", "0", "0") A_TEXT_START("0") A_TEXT("1", "x"),  /* other index */
        A_START("1", "0", "0") A_TEXT_START("0") A_JSON("0", "{}"), /* kind mismatch */
        A_START("1", "0", "0") A_TEXT_START("0") A_STOP("1"),       /* wrong stop */
        A_START("1", "0", "0") A_TEXT_START("0") A_DELTA("end_turn", "1"), /* block open */
        A_START("1", "0", "0") A_END,                                      /* no message_delta */
        A_START("1", "0", "0") A_DELTA("end_turn", "1") A_DELTA("end_turn", "1"),
        A_START("1", "0", "0") A_DELTA("end_turn", "1") A_TEXT_START("0"), /* after the finish */
        A_START("1", "0", "0") A_DELTA("pause_turn", "1"),                 /* server tools */
        A_START("1", "0", "0") A_DELTA("whatever", "1"),
        A_START("1", "0", "0")
            A("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null}}"),
        A_START("1", "0", "0") A("content_block_start",
                                 "{\"type\":\"content_block_start\",\"index\":0,"
                                 "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}"),
        A_START("1", "0", "0")
            A("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                     "\"content_block\":{\"type\":\"redacted_thinking\"}}"),
        A_START("1", "0", "0")
            A("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                     "\"content_block\":{\"type\":\"server_tool_use\","
                                     "\"id\":\"s\",\"name\":\"web_search\",\"input\":{}}}"),
        A_START("1", "0", "0") A_TEXT_START("0")
            A("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                     "{\"type\":\"citations_delta\",\"citation\":{}}}"),
        A_START("1", "0", "0") A_TOOL_START("0", "t", "f")
            A("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
                                     "\"delta\":{\"type\":\"signature_delta\"}}"),
        A_START("1", "0", "0") A_TEXT_START("0")
            A("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                     "{\"type\":\"text_delta\",\"text\":7}}"),
        A_START("1", "0", "0")
            A("content_block_start",
              "{\"type\":\"content_block_start\",\"index\":0,"
              "\"content_block\":{\"type\":\"tool_use\",\"id\":\"\",\"name\":\"f\"}}"),
        A_START("1", "0", "0")
            A("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                     "\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\","
                                     "\"name\":\"f\",\"input\":[]}}"),
        A_START("1", "0", "0") "data: {\"type\":\"message_delta\",\n\n", /* not JSON */
        A_START("1", "0", "0") "data: [1,2]\n\n",                        /* not an object */
        A_START("1", "0", "0") "data: {\"index\":0}\n\n",                /* no type */
        "data: [DONE]\n\n",                                              /* not Anthropic's */
        A_START("1", "0", "0") A_DELTA("end_turn", "1") A_END A_PING,    /* after the end */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(A2O, bad[i], TG_EINVAL);
}

static void test_a2o_error_event(void **state)
{
    (void)state;
    static const char s[] = A_START("5", "0", "0") A_TEXT_START("0") A_TEXT("0", "partial")
        A("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                   "\"Overloaded\"}}");
    tg_xstream xs;
    tg_buf out;
    tg_buf_init(&out, 1 << 16);
    xs_init(&xs, A2O, true);
    assert_int_equal(translate(&xs, s, 0, &out), 0);
    assert_int_equal(tg_xstream_phase(&xs), TG_XS_FAILED);
    dump("a2o_error", tg_buf_str(&out));
    assert_non_null(
        strstr(out.p, "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\","
                      "\"param\":null,\"code\":null}}\n\n"));
    client c;
    client_init(&c, A2O);
    client_read(&c, tg_buf_str(&out));
    assert_true(c.error && !c.done);
    assert_string_equal(c.text.p, "partial");
    assert_string_equal(c.error_type, "overloaded_error");
    client_release(&c);
    /* the stream is over: nothing more goes out */
    size_t n0 = out.n;
    assert_int_equal(tg_xstream_event(&xs, TG_STR("{\"type\":\"ping\"}"), &out), TG_EINVAL);
    assert_int_equal(tg_xstream_error(&xs, "upstream_error", NULL, TG_STR("x"), &out), TG_EINVAL);
    assert_int_equal(tg_xstream_cut(&xs, TG_STR("x"), &out), TG_EINVAL);
    assert_int_equal(tg_xstream_finish(&xs, &out), TG_EINVAL);
    assert_int_equal(out.n, n0);
    tg_xstream_release(&xs);
    tg_buf_release(&out);
}

/* ---- OpenAI upstream -> Anthropic client ------------------------------ */

#define CHUNK(choices)                                                                             \
    O("{\"id\":\"chatcmpl-up\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"      \
      "\"gpt-x\",\"system_fingerprint\":\"fp\",\"choices\":[" choices "],\"usage\":null}")
#define CH(delta, finish)                                                                          \
    "{\"index\":0,\"delta\":" delta ",\"logprobs\":null,\"finish_reason\":" finish "}"
#define O_ROLE CHUNK(CH("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", "null"))
#define O_TEXT(t) CHUNK(CH("{\"content\":\"" t "\"}", "null"))
#define O_FINISH(r) CHUNK(CH("{}", "\"" r "\""))
#define O_CALL(k, id, name, args)                                                                  \
    "{\"index\":" k ",\"id\":\"" id "\",\"type\":\"function\",\"function\":{\"name\":\"" name      \
    "\",\"arguments\":\"" args "\"}}"
#define O_ARGS(k, args) "{\"index\":" k ",\"function\":{\"arguments\":\"" args "\"}}"
#define O_TOOLS(calls) CHUNK(CH("{\"tool_calls\":[" calls "]}", "null"))
#define O_USAGE(p, c, cached)                                                                      \
    O("{\"id\":\"chatcmpl-up\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"      \
      "\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":" p ",\"completion_tokens\":" c       \
      ",\"total_tokens\":0,\"prompt_tokens_details\":{\"cached_tokens\":" cached "}}}")
#define O_DONE "data: [DONE]\n\n"

static const char o_text[] = O_ROLE O_TEXT("Hello") O_TEXT(", \\\"w\\u00f6rld\\\"\\n")
    O_TEXT("") ": keep-alive\n\n" O_TEXT(" caf\xc3\xa9") O_FINISH("stop") O_USAGE("120", "9", "100")
        O_DONE;

static void test_o2a_text(void **state)
{
    (void)state;
    client c;
    run("o2a_text", O2A, false, o_text, &c);
    assert_string_equal(c.text.p, "Hello, \"w\xc3\xb6rld\"\n caf\xc3\xa9");
    assert_string_equal(c.finish, "end_turn");
    assert_int_equal(c.next_block, 1);
    assert_int_equal(c.start_input, 77); /* the caller's estimate, corrected at the end */
    assert_true(c.input == 20 && c.read == 100 && c.write == 0 && c.output == 9);
    client_release(&c);

    tg_xstream xs;
    tg_buf out;
    tg_buf_init(&out, 1 << 16);
    xs_init(&xs, O2A, false);
    assert_int_equal(translate(&xs, O_ROLE O_TEXT("Hi"), 0, &out), 0);
    assert_string_equal(
        out.p, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"
               "\"msg_test\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"my-model\","
               "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
               "\"input_tokens\":77,\"output_tokens\":0,\"cache_creation_input_tokens\":0,"
               "\"cache_read_input_tokens\":0}}}\n\n"
               "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
               "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
               "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
               "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n");
    tg_xstream_release(&xs);
    tg_buf_release(&out);
}

/* OpenAI's usual order: text, then each call whole. */
static const char o_tools[] =
    O_ROLE O_TEXT("Let me check.") O_TOOLS(O_CALL("0", "call_A", "get_weather", ""))
        O_TOOLS(O_ARGS("0", "{\\\"ci")) O_TOOLS(O_ARGS("0", "ty\\\": \\\"Paris\\\"}"))
            O_TOOLS(O_CALL("1", "call_B", "get_time", ""))
                O_TOOLS(O_ARGS("1", "{\\\"tz\\\":\\\"CET\\\"}")) O_FINISH("tool_calls")
                    O_USAGE("50", "30", "0") O_DONE;

static void test_o2a_tools(void **state)
{
    (void)state;
    client c;
    run("o2a_tools", O2A, false, o_tools, &c);
    assert_string_equal(c.text.p, "Let me check.");
    assert_int_equal(c.ntools, 2);
    assert_int_equal(c.next_block, 3);
    assert_tool(&c, 0, "call_A", "get_weather", "{\"city\": \"Paris\"}");
    assert_tool(&c, 1, "call_B", "get_time", "{\"tz\":\"CET\"}");
    assert_string_equal(c.finish, "tool_use");
    assert_true(c.input == 50 && c.output == 30);
    client_release(&c);
}

/* Calls interleaved by index, several in one delta, one named late: still
 * whole, sequential blocks in the order the calls appeared. */
static const char o_interleaved[] = O_ROLE O_TOOLS(O_CALL("0", "call_A", "get_weather", ""))
    O_TOOLS(O_CALL("1", "call_B", "get_time", "{\\\"t")) O_TOOLS(O_ARGS("0", "{\\\"city\\\":"))
        O_TOOLS(O_ARGS("1", "z\\\":\\\"CET\\\"}"))
            O_TOOLS(O_ARGS("0", "\\\"Paris\\\"}") "," O_ARGS("3", "{\\\"a\\\":"))
                O_TOOLS(O_CALL("2", "call_C", "now", "{}") "," O_ARGS("0", ""))
                    O_TOOLS("{\"index\":3,\"id\":\"call_D\",\"type\":\"function\",\"function\":{"
                            "\"name\":\"late\"}}") O_TOOLS(O_ARGS("3", "1}")) O_FINISH("tool_calls")
                        O_USAGE("10", "20", "0") O_DONE;

static void test_o2a_interleaved(void **state)
{
    (void)state;
    client c;
    run("o2a_interleaved", O2A, true, o_interleaved, &c);
    assert_int_equal(c.ntools, 4);
    assert_int_equal(c.text.n, 0);
    assert_tool(&c, 0, "call_A", "get_weather", "{\"city\":\"Paris\"}");
    assert_tool(&c, 1, "call_B", "get_time", "{\"tz\":\"CET\"}");
    assert_tool(&c, 2, "call_D", "late", "{\"a\":1}"); /* index 3 appeared before index 2 */
    assert_tool(&c, 3, "call_C", "now", "{}");
    assert_string_equal(c.finish, "tool_use");
    client_release(&c);
}

static void test_o2a_stop_reasons(void **state)
{
    (void)state;
    client c;
    run("o2a_length", O2A, false,
        O_ROLE O_TEXT("abc") O_FINISH("length") O_USAGE("3", "4", "0") O_DONE, &c);
    assert_string_equal(c.finish, "max_tokens");
    client_release(&c);
    run("o2a_filter", O2A, false, O_ROLE O_FINISH("content_filter") O_DONE, &c);
    assert_string_equal(c.finish, "refusal");
    assert_int_equal(c.next_block, 0);
    /* no usage chunk: the estimate stands */
    assert_true(c.input == 77 && c.output == 0);
    client_release(&c);
    /* servers that say "stop" after tool calls */
    run("o2a_stop_tools", O2A, false,
        O_ROLE O_TOOLS(O_CALL("0", "c", "f", "{}")) O_FINISH("stop") O_DONE, &c);
    assert_string_equal(c.finish, "tool_use");
    client_release(&c);
    /* a refusal's text reaches the client; choices null on the usage chunk (vLLM) */
    run("o2a_refusal", O2A, false,
        O_ROLE CHUNK(CH("{\"refusal\":\"I can't.\"}", "null")) O_FINISH("stop")
            O("{\"choices\":null,\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}") O_DONE,
        &c);
    assert_string_equal(c.text.p, "I can't.");
    assert_true(c.input == 5 && c.output == 2);
    client_release(&c);
}

/* Text while a call streams closes it; the calls held meanwhile follow. */
static void test_o2a_text_after_tools(void **state)
{
    (void)state;
    client c;
    run("o2a_text_after", O2A, false,
        O_ROLE O_TOOLS(O_CALL("0", "a", "f", "{}")) O_TOOLS(O_CALL("1", "b", "g", "[1"))
            O_TEXT("mid") O_TOOLS(O_ARGS("1", "]")) O_TEXT("end") O_FINISH("tool_calls") O_DONE,
        &c);
    assert_int_equal(c.next_block, 4); /* a, mid, b, end */
    assert_tool(&c, 0, "a", "f", "{}");
    assert_tool(&c, 1, "b", "g", "[1]");
    assert_string_equal(c.text.p, "midend");
    client_release(&c);
}

static void test_o2a_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        O_ROLE O_TEXT("x") O_DONE, /* no finish_reason */
        O_DONE,
        O_ROLE O_FINISH("stop") O_TEXT("late"), /* content after the finish */
        O_ROLE O_FINISH("stop") O_TOOLS(O_CALL("0", "a", "f", "")),
        O_ROLE O_FINISH("stop") O_FINISH("stop"),
        O_ROLE O_FINISH("function_call"),
        O_ROLE O_FINISH("something_new"),
        CHUNK("{\"index\":1,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}"), /* n > 1 */
        CHUNK("{\"delta\":{\"content\":\"x\"},\"finish_reason\":null}"),
        CHUNK("7"),
        CHUNK(CH("[]", "null")),
        CHUNK(CH("{}", "7")),
        O("{\"choices\":{}}"),
        CHUNK(CH("{\"content\":7}", "null")),
        CHUNK(CH("{\"tool_calls\":{}}", "null")),
        CHUNK(CH("{\"function_call\":{\"name\":\"f\",\"arguments\":\"\"}}", "null")),
        CHUNK(CH("{\"reasoning_content\":\"hmm\"}", "null")),
        CHUNK(CH("{\"reasoning\":\"hmm\"}", "null")),
        CHUNK(CH("{\"audio\":{\"id\":\"a\"}}", "null")),
        O_TOOLS("{\"id\":\"a\",\"function\":{\"name\":\"f\"}}"), /* no index */
        O_TOOLS("{\"index\":-1,\"id\":\"a\",\"function\":{\"name\":\"f\"}}"),
        O_TOOLS("7"),
        O_TOOLS("{\"index\":0,\"id\":\"a\",\"type\":\"custom\",\"custom\":{\"name\":\"f\"}}"),
        O_TOOLS("{\"index\":0,\"id\":\"a\",\"function\":[]}"),
        O_TOOLS("{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":{}}}"),
        O_TOOLS("{\"index\":0,\"id\":7,\"function\":{\"name\":\"f\"}}"),
        O_TOOLS(O_CALL("0", "a", "f", "")) O_TOOLS(O_CALL("0", "b", "f", "")), /* id changed */
        O_TOOLS(O_CALL("0", "a", "f", "")) O_TOOLS(O_CALL("0", "a", "g", "")), /* name changed */
        O_TOOLS(O_CALL("0", "a", "f", "{")) O_TEXT("x") O_TOOLS(O_ARGS("0", "}")), /* closed */
        O_TOOLS(O_ARGS("0", "{}")) O_FINISH("tool_calls") O_DONE,                  /* never named */
        "data: {\"choices\":[\n\n",                                                /* not JSON */
        "data: \"str\"\n\n",
        O_ROLE O_FINISH("stop") O_DONE O_ROLE, /* after the end */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(O2A, bad[i], TG_EINVAL);
}

static void test_o2a_error_event(void **state)
{
    (void)state;
    static const struct {
        const char *event, *type;
    } cases[] = {
        {O("{\"error\":{\"message\":\"Rate limit\",\"type\":\"rate_limit_error\",\"code\":\"x\"}}"),
         "rate_limit_error"},
        {O("{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}"), "api_error"},
        {O("{\"error\":\"a plain string\"}"), "api_error"},
        {O("{\"error\":{\"type\":\"invalid_request_error\"}}"), "invalid_request_error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char s[1024];
        snprintf(s, sizeof s, "%s%s", O_ROLE O_TEXT("so far"), cases[i].event);
        tg_xstream xs;
        tg_buf out;
        tg_buf_init(&out, 1 << 16);
        xs_init(&xs, O2A, false);
        assert_int_equal(translate(&xs, s, 0, &out), 0);
        assert_int_equal(tg_xstream_phase(&xs), TG_XS_FAILED);
        dump("o2a_error", tg_buf_str(&out));
        client c;
        client_init(&c, O2A);
        client_read(&c, tg_buf_str(&out));
        assert_true(c.error && !c.done);
        assert_string_equal(c.error_type, cases[i].type);
        assert_string_equal(c.text.p, "so far");
        client_release(&c);
        tg_xstream_release(&xs);
        tg_buf_release(&out);
    }
}

/* ---- both ways --------------------------------------------------------- */

static void test_cut(void **state)
{
    (void)state;
    static const struct {
        tg_xs_dir dir;
        const char *upstream;
    } cases[] = {
        {A2O, ""},
        {A2O, A_START("9", "0", "0") A_TEXT_START("0") A_TEXT("0", "half")},
        {A2O, A_START("9", "0", "0") A_TOOL_START("0", "t", "f") A_JSON("0", "{\\\"a")},
        {O2A, ""},
        {O2A, O_ROLE O_TEXT("half")},
        /* the live call is closed, the held one written whole, the nameless one left out */
        {O2A, O_ROLE O_TOOLS(O_CALL("0", "a", "f", "{\\\"x")) O_TOOLS(O_CALL("1", "b", "g", "{}"))
                  O_TOOLS(O_ARGS("2", "{}"))},
        {O2A, O_ROLE O_TEXT("all") O_FINISH("stop")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_xstream xs;
        tg_buf out;
        tg_buf_init(&out, 1 << 16);
        xs_init(&xs, cases[i].dir, true);
        assert_int_equal(translate(&xs, cases[i].upstream, 0, &out), 0);
        assert_int_equal(tg_xstream_cut(&xs, TG_STR("Stopped by tollgate: \"plan\" limit"), &out),
                         0);
        assert_int_equal(tg_xstream_phase(&xs), TG_XS_ENDED);
        assert_int_equal(tg_buf_add_lit(&out, CHARGE), 0);
        assert_int_equal(tg_xstream_finish(&xs, &out), 0);
        assert_int_equal(tg_xstream_phase(&xs), TG_XS_FINISHED);
        dump(i == 5 ? "o2a_cut" : i == 2 ? "a2o_cut" : "cut", tg_buf_str(&out));
        client c;
        client_init(&c, cases[i].dir);
        client_read(&c, tg_buf_str(&out));
        assert_true(c.done && c.stopped && c.role && !c.error);
        assert_string_equal(c.finish, cases[i].dir == A2O ? "length" : "max_tokens");
        assert_false(cases[i].dir == A2O && c.usage); /* no usage chunk, as a relayed cut */
        if (i == 5) {
            assert_int_equal(c.ntools, 2);
            assert_tool(&c, 0, "a", "f", "{\"x");
            assert_tool(&c, 1, "b", "g", "{}");
        }
        client_release(&c);
        assert_int_equal(tg_xstream_cut(&xs, TG_STR("again"), &out), TG_EINVAL);
        tg_xstream_release(&xs);
        tg_buf_release(&out);
    }
}

static void test_caller_errors(void **state)
{
    (void)state;
    tg_xstream xs;
    tg_buf out;
    tg_buf_init(&out, 1 << 16);
    xs_init(&xs, A2O, false);
    assert_int_equal(tg_xstream_error(&xs, "upstream_error", "upstream_connection_broken",
                                      TG_STR("provider p closed \"the\" connection\n"), &out),
                     0);
    assert_string_equal(
        out.p, "data: {\"error\":{\"message\":\"provider p closed \\\"the\\\" connection\\n\","
               "\"type\":\"upstream_error\",\"param\":null,\"code\":"
               "\"upstream_connection_broken\"}}\n\n");
    assert_int_equal(tg_xstream_error(&xs, "upstream_error", NULL, TG_STR("again"), &out),
                     TG_EINVAL);
    tg_xstream_release(&xs);

    static const char *const types[][2] = {{"upstream_error", "api_error"},
                                           {"rate_limit_error", "rate_limit_error"},
                                           {"invalid_request_error", "invalid_request_error"},
                                           {"overloaded_error", "overloaded_error"}};
    for (size_t i = 0; i < 4; i++) {
        tg_buf_clear(&out);
        xs_init(&xs, O2A, false);
        assert_int_equal(translate(&xs, O_ROLE, 0, &out), 0);
        assert_int_equal(tg_xstream_error(&xs, types[i][0], "code", TG_STR("m\xff"), &out), 0);
        client c;
        client_init(&c, O2A);
        client_read(&c, tg_buf_str(&out));
        assert_true(c.error);
        assert_string_equal(c.error_type, types[i][1]);
        client_release(&c);
        tg_xstream_release(&xs);
    }
    /* after the end, before the last event: still an error is possible */
    tg_buf_clear(&out);
    xs_init(&xs, O2A, false);
    feed f = {&xs, &out, 0};
    tg_sse sse;
    tg_sse_init(&sse, 1 << 16);
    static const char s[] = O_ROLE O_FINISH("stop");
    tg_sse_feed(&sse, s, sizeof s - 1, on_upstream_event, &f);
    assert_int_equal(tg_xstream_event(&xs, TG_STR("[DONE]"), &out), 0);
    assert_int_equal(tg_xstream_phase(&xs), TG_XS_ENDED);
    assert_int_equal(tg_xstream_event(&xs, TG_STR("[DONE]"), &out), TG_EINVAL);
    assert_int_equal(tg_xstream_error(&xs, "upstream_error", NULL, TG_STR("x"), &out), 0);
    assert_int_equal(tg_xstream_finish(&xs, &out), TG_EINVAL);
    tg_sse_release(&sse);
    tg_xstream_release(&xs);
    tg_buf_release(&out);
}

/* An event that would overflow the caller's buffer leaves it as it was. */
static void test_rollback(void **state)
{
    (void)state;
    tg_xstream xs;
    tg_buf out;
    tg_buf_init(&out, 4096);
    xs_init(&xs, O2A, false);
    assert_int_equal(tg_xstream_event(&xs, TG_STR("{\"choices\":[]}"), &out), 0);
    size_t n0 = out.n;
    out.max = n0 + 200;
    /* a block start and a delta: the start fits, the delta does not */
    assert_int_equal(tg_xstream_event(&xs,
                                      TG_STR("{\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                                             "\"0123456789012345678901234567890123456789\"}}]}"),
                                      &out),
                     TG_ETOOBIG);
    assert_int_equal(out.n, n0);
    assert_true(tg_xstream_why(&xs)[0]);
    assert_int_equal(tg_xstream_event(&xs, TG_STR(""), &out), 0); /* a comment: nothing */
    assert_int_equal(out.n, n0);
    tg_xstream_release(&xs);
    tg_buf_release(&out);

    /* id and model are bounded */
    char big[TG_XS_MAX_NAME + 1];
    memset(big, 'm', sizeof big);
    assert_int_equal(
        tg_xstream_init(&xs, A2O, tg_str_make(big, sizeof big), TG_STR("i"), false, 0, 0),
        TG_ETOOBIG);
    tg_xstream_release(&xs);
}

/* A chunk for call index k: named when name is set, else arguments of n
 * bytes of 'a'. */
static char *call_chunk(int k, const char *name, size_t n)
{
    size_t cap = n + 256 + (name ? strlen(name) : 0);
    char *p = malloc(cap);
    assert_non_null(p);
    int len =
        name
            ? snprintf(p, cap,
                       "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%d,\"id\":"
                       "\"call_%d\",\"function\":{\"name\":\"%s\"}}]}}]}",
                       k, k, name)
            : snprintf(p, cap,
                       "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%d,"
                       "\"function\":{\"arguments\":\"",
                       k);
    if (!name) {
        memset(p + len, 'a', n);
        memcpy(p + len + n, "\"}}]}}]}", 9);
    }
    return p;
}

static void test_caps(void **state)
{
    (void)state;
    tg_xstream xs;
    tg_buf out;
    tg_buf_init(&out, 1 << 26);
    /* tool calls: TG_XS_MAX_CALLS of them, not one more */
    xs_init(&xs, O2A, false);
    for (int k = 0; k <= TG_XS_MAX_CALLS; k++) {
        char *c = call_chunk(k, "f", 0);
        int rc = tg_xstream_event(&xs, tg_str_c(c), &out);
        assert_int_equal(rc, k < TG_XS_MAX_CALLS ? TG_OK : TG_ETOOBIG);
        free(c);
    }
    assert_true(tg_xstream_why(&xs)[0]);
    tg_xstream_release(&xs);

    /* held arguments: the live call streams whatever its size; the held
     * ones stop at TG_XS_MAX_HELD in all */
    tg_buf_clear(&out);
    xs_init(&xs, O2A, false);
    char *named[2] = {call_chunk(0, "f", 0), call_chunk(1, "g", 0)};
    char *piece[2] = {call_chunk(0, NULL, 1 << 20), call_chunk(1, NULL, 1 << 20)};
    for (int i = 0; i < 2; i++)
        assert_int_equal(tg_xstream_event(&xs, tg_str_c(named[i]), &out), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(tg_xstream_event(&xs, tg_str_c(piece[0]), &out), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tg_xstream_event(&xs, tg_str_c(piece[1]), &out), 0);
    size_t n0 = out.n;
    assert_int_equal(tg_xstream_event(&xs, tg_str_c(piece[1]), &out), TG_ETOOBIG);
    assert_int_equal(out.n, n0);
    assert_true(tg_xstream_why(&xs)[0]);
    for (int i = 0; i < 2; i++)
        free(named[i]), free(piece[i]);
    tg_xstream_release(&xs);

    /* a name past TG_XS_MAX_NAME */
    tg_buf_clear(&out);
    xs_init(&xs, O2A, false);
    char name[TG_XS_MAX_NAME + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    char *c = call_chunk(0, name, 0);
    assert_int_equal(tg_xstream_event(&xs, tg_str_c(c), &out), TG_ETOOBIG);
    assert_true(tg_xstream_why(&xs)[0]);
    free(c);
    tg_xstream_release(&xs);
    tg_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a2o_text),
        cmocka_unit_test(test_a2o_usage),
        cmocka_unit_test(test_a2o_tools),
        cmocka_unit_test(test_a2o_stop_reasons),
        cmocka_unit_test(test_a2o_refused),
        cmocka_unit_test(test_a2o_error_event),
        cmocka_unit_test(test_o2a_text),
        cmocka_unit_test(test_o2a_tools),
        cmocka_unit_test(test_o2a_interleaved),
        cmocka_unit_test(test_o2a_stop_reasons),
        cmocka_unit_test(test_o2a_text_after_tools),
        cmocka_unit_test(test_o2a_refused),
        cmocka_unit_test(test_o2a_error_event),
        cmocka_unit_test(test_cut),
        cmocka_unit_test(test_caller_errors),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
