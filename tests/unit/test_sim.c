/* The simulated provider's pure parts (src/sim): token counting, the
 * canonical prompt both dialects share, Anthropic's validation, tool
 * definitions and choices in both dialects, a forced call's arguments and
 * their pieces, the cut by max_tokens, the cache split, and the bodies and
 * stream events of both dialects being the JSON they claim to be. */
#include "sim/sim_int.h"

#include "base/json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

static tg_sim_conf conf;

static int setup(void **state)
{
    (void)state;
    tg_sim_conf_defaults(&conf);
    conf.seed = 7;
    return 0;
}

/* Parses body as kind into c (the arena a holds decoded strings). */
static int parse(tg_sim__kind kind, const char *body, tg_arena *a, tg_sim__call *c, tg_sim__err *e)
{
    return tg_sim__parse(&conf, kind, tg_str_c(body), a, c, e);
}

static void parse_ok(tg_sim__kind kind, const char *body, tg_arena *a, tg_sim__call *c)
{
    tg_sim__err e = {0};
    int rc = parse(kind, body, a, c, &e);
    if (rc) fail_msg("%s: %s", body, e.msg);
}

/* The 400 of body must mention want. */
static void parse_400(tg_sim__kind kind, const char *body, const char *want)
{
    tg_arena a;
    tg_sim__call c;
    tg_sim__err e = {0};
    tg_arena_init(&a);
    assert_int_not_equal(parse(kind, body, &a, &c, &e), 0);
    assert_int_equal(e.status, 400);
    if (!strstr(e.msg, want)) fail_msg("%s: \"%s\" does not say \"%s\"", body, e.msg, want);
    tg_arena_release(&a);
}

static void test_count_tokens(void **state)
{
    (void)state;
    assert_int_equal(tg_sim_count_tokens(TG_STR("Hello, world!")), 4);
    assert_int_equal(tg_sim_count_tokens(TG_STR("H\xc3\xa9llo")), 3);
    assert_int_equal(tg_sim_count_tokens(TG_STR("cats42")), 1);
    assert_int_equal(tg_sim_count_tokens(TG_STR(" \t\r\n")), 0);
    assert_int_equal(tg_sim_count_tokens(TG_STR("{\"a b\":\"c\"}")), 10);
}

/* The same conversation written in each dialect: the same count, the
 * same hash, hence the same answer. */
static void test_dialects_agree(void **state)
{
    static const char *pairs[][2] = {
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello, world!\"}]}",
         "{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"text\",\"text\":\"Hello, world!\"}]}]}"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\","
         "\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"user\",\"content\":"
         "[{\"type\":\"text\",\"text\":\"q\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
         "\"x\"}}]},{\"role\":\"assistant\",\"content\":\"r\"},{\"role\":\"user\",\"content\":"
         "\"s\"}]}",
         "{\"model\":\"m\",\"max_tokens\":9,\"system\":[{\"type\":\"text\",\"text\":\"a\"},"
         "{\"type\":\"text\",\"text\":\"\\u0062\"}],\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"text\",\"text\":\"q\"},{\"type\":\"image\",\"source\":{\"type\":\"url\","
         "\"url\":\"x\"}}]},{\"role\":\"assistant\",\"content\":\"r\"},{\"role\":\"user\","
         "\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":\"s\"}]}]}"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        tg_arena a;
        tg_sim__call o, m;
        tg_arena_init(&a);
        parse_ok(TG_SIM__CHAT, pairs[i][0], &a, &o);
        parse_ok(TG_SIM__MESSAGES, pairs[i][1], &a, &m);
        assert_int_equal(o.prompt_tokens, m.prompt_tokens);
        assert_true(o.text_hash == m.text_hash);
        tg_arena_release(&a);
    }
    /* 3 + user + Hello , world ! + 3 */
    tg_arena a;
    tg_sim__call c, d;
    tg_arena_init(&a);
    parse_ok(TG_SIM__MESSAGES, pairs[0][1], &a, &c);
    assert_int_equal(c.prompt_tokens, 11);
    assert_int_equal(c.max_tokens, 9);
    /* parts stay apart: "ab" is not "a" + "b" */
    parse_ok(TG_SIM__MESSAGES,
             "{\"model\":\"m\",\"max_tokens\":1,\"system\":\"ab\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"q\"}]}",
             &a, &d);
    parse_ok(TG_SIM__MESSAGES,
             "{\"model\":\"m\",\"max_tokens\":1,\"system\":[{\"type\":\"text\",\"text\":\"a\"},"
             "{\"type\":\"text\",\"text\":\"b\"}],\"messages\":[{\"role\":\"user\",\"content\":"
             "\"q\"}]}",
             &a, &c);
    assert_true(c.text_hash != d.text_hash);
    tg_arena_release(&a);
}

static void test_messages_validation(void **state)
{
    (void)state;
    const char *M = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
    char b[512];
    parse_400(TG_SIM__MESSAGES, "[]", "must be an object");
    snprintf(b, sizeof b, "{\"model\":\"m\",%s}", M);
    parse_400(TG_SIM__MESSAGES, b, "max_tokens: Field required");
    snprintf(b, sizeof b, "{\"max_tokens\":1,%s}", M);
    parse_400(TG_SIM__MESSAGES, b, "model: Field required");
    snprintf(b, sizeof b, "{\"model\":\"m\",\"max_tokens\":1.5,%s}", M);
    parse_400(TG_SIM__MESSAGES, b, "max_tokens: Input should be a valid integer");
    parse_400(TG_SIM__MESSAGES, "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[]}",
              "at least one message");
    parse_400(TG_SIM__MESSAGES,
              "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"system\","
              "\"content\":\"x\"}]}",
              "messages.0.role: Input should be 'user' or 'assistant'");
    parse_400(TG_SIM__MESSAGES,
              "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":"
              "[{\"type\":\"audio\"}]}]}",
              "Input tag 'audio'");
    parse_400(TG_SIM__MESSAGES,
              "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":"
              "[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":[{\"type\":"
              "\"tool_use\"}]}]}]}",
              "messages.0.content.0.content.0.type: Input tag 'tool_use'");
    parse_400(TG_SIM__MESSAGES,
              "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":"
              "[]}]}",
              "non-empty content");
    snprintf(b, sizeof b, "{\"model\":\"m\",\"max_tokens\":1,\"top_p\":-0.5,%s}", M);
    parse_400(TG_SIM__MESSAGES, b, "top_p: Input should be greater than or equal to 0");
    /* an empty final assistant turn is a prefill, not an error */
    tg_arena a;
    tg_sim__call c;
    tg_arena_init(&a);
    parse_ok(TG_SIM__MESSAGES,
             "{\"model\":\"m\",\"max_tokens\":1,\"temperature\":1,\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"\"}]}",
             &a, &c);
    tg_arena_release(&a);
}

#define WEATHER                                                                                    \
    "{\"name\":\"get_weather\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{}," \
    "\"u\\\"nit\":{}}}}"
#define TIME "{\"name\":\"get_time\",\"input_schema\":{\"type\":\"object\"}}"

static void test_tool_choice(void **state)
{
    (void)state;
    tg_arena a;
    tg_sim__call c;
    tg_arena_init(&a);
    const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
    char b[1024];
    snprintf(b, sizeof b,
             "{\"model\":\"m\",\"max_tokens\":99,\"tools\":[" WEATHER "," TIME
             "],\"tool_choice\":{\"type\":\"any\"},%s}",
             msgs);
    parse_ok(TG_SIM__MESSAGES, b, &a, &c);
    assert_true(c.tool_forced);
    assert_true(tg_str_eq(c.tool_name, TG_STR("get_weather")));
    assert_int_equal(c.tool_props.type, TG_JSON_OBJECT);
    snprintf(b, sizeof b,
             "{\"model\":\"m\",\"max_tokens\":99,\"tools\":[" WEATHER "," TIME
             "],\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_\\u0074ime\"},%s}",
             msgs);
    parse_ok(TG_SIM__MESSAGES, b, &a, &c);
    assert_true(tg_str_eq(c.tool_name, TG_STR("get_time")));
    assert_int_equal(c.tool_props.type, TG_JSON_NONE);
    snprintf(b, sizeof b,
             "{\"model\":\"m\",\"max_tokens\":99,\"tools\":[" WEATHER
             "],\"tool_choice\":{\"type\":\"auto\"},%s}",
             msgs);
    parse_ok(TG_SIM__MESSAGES, b, &a, &c);
    assert_false(c.tool_forced);
    /* OpenAI's: "required" is the first; a named function; "auto" none */
    snprintf(b, sizeof b,
             "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
             "\"parameters\":{\"type\":\"object\",\"properties\":{\"x\":{}}}}},{\"type\":"
             "\"function\",\"function\":{\"name\":\"g\"}}],\"tool_choice\":%s,%s}",
             "\"required\"", msgs);
    parse_ok(TG_SIM__CHAT, b, &a, &c);
    assert_true(c.tool_forced && tg_str_eq(c.tool_name, TG_STR("f")));
    snprintf(b, sizeof b,
             "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
             "{\"type\":\"function\",\"function\":{\"name\":\"g\"}}],\"tool_choice\":%s,%s}",
             "{\"type\":\"function\",\"function\":{\"name\":\"g\"}}", msgs);
    parse_ok(TG_SIM__CHAT, b, &a, &c);
    assert_true(c.tool_forced && tg_str_eq(c.tool_name, TG_STR("g")));
    snprintf(b, sizeof b,
             "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
             "\"tool_choice\":\"auto\",%s}",
             msgs);
    parse_ok(TG_SIM__CHAT, b, &a, &c);
    assert_false(c.tool_forced);
    snprintf(b, sizeof b, "{\"model\":\"m\",\"tool_choice\":\"auto\",%s}", msgs);
    parse_400(TG_SIM__CHAT, b, "only allowed when 'tools' are specified");
    snprintf(b, sizeof b, "{\"model\":\"m\",\"max_tokens\":9,\"tools\":[" TIME "," TIME "],%s}",
             msgs);
    parse_400(TG_SIM__MESSAGES, b, "Tool names must be unique");
    tg_arena_release(&a);
}

/* A forced call of get_weather from a messages body with this limit. The
 * call's views point into the body, so it lives in the arena. */
static void forced(tg_arena *a, uint32_t max_tokens, tg_sim__call *c)
{
    char b[1024];
    snprintf(b, sizeof b,
             "{\"model\":\"m\",\"max_tokens\":%u,\"tools\":[" WEATHER "],\"tool_choice\":"
             "{\"type\":\"any\"},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
             max_tokens);
    parse_ok(TG_SIM__MESSAGES, tg_arena_dup(a, tg_str_c(b)).p, a, c);
}

static bool valid_json(tg_str s)
{
    return tg_json_validate(s.p, s.n, 0, NULL, NULL) == TG_OK;
}

static void test_tool_args_and_pieces(void **state)
{
    (void)state;
    tg_arena a;
    tg_sim__call c;
    tg_sim__plan p, q;
    tg_arena_init(&a);
    forced(&a, 1000, &c);
    assert_int_equal(tg_sim__plan_make(&conf, &c, &p), 0);
    assert_int_equal(tg_sim__plan_make(&conf, &c, &q), 0);
    tg_str args = tg_buf_str(&p.args);
    assert_true(p.tool && !p.length);
    assert_true(tg_str_eq(args, tg_buf_str(&q.args))); /* deterministic */
    assert_true(valid_json(args));
    tg_json_val root = tg_json_root(args.p, args.n);
    assert_int_equal(tg_json_get(root, TG_STR("city")).type, TG_JSON_STRING);
    assert_int_equal(tg_json_get(root, TG_STR("u\"nit")).type, TG_JSON_STRING);
    assert_int_equal(p.tokens, tg_sim_count_tokens(args));
    /* one token per piece, and the pieces are the text */
    tg_buf joined;
    tg_buf_init(&joined, 1 << 20);
    for (uint32_t i = 0; i < p.tokens; i++) {
        tg_str piece = tg_sim__piece(&p, i == 0);
        assert_int_equal(tg_sim_count_tokens(piece), 1);
        tg_buf_add_str(&joined, piece);
    }
    assert_true(tg_str_eq(tg_buf_str(&joined), args));
    assert_int_equal(tg_sim__piece(&p, false).n, 0);
    /* cut: a prefix of whole tokens, and an object of the whole properties */
    for (uint32_t limit = 1; limit < q.tokens; limit++) {
        tg_sim__plan cut;
        forced(&a, limit, &c);
        assert_int_equal(tg_sim__plan_make(&conf, &c, &cut), 0);
        tg_str prefix = tg_buf_str(&cut.args), input = tg_sim__plan_input(&cut);
        assert_true(cut.length);
        assert_int_equal(cut.tokens, limit);
        assert_int_equal(tg_sim_count_tokens(prefix), limit);
        assert_true(prefix.n <= args.n && !memcmp(prefix.p, args.p, prefix.n));
        assert_true(valid_json(input));
        assert_true(input.n - 1 <= prefix.n && !memcmp(input.p, args.p, input.n - 1));
        tg_sim__plan_release(&cut);
    }
    tg_buf_release(&joined);
    tg_sim__plan_release(&p);
    tg_sim__plan_release(&q);
    tg_arena_release(&a);
}

static void test_token_piece(void **state)
{
    (void)state;
    tg_str text = TG_STR("  ab, c\xc3\xa9 \"d\" ");
    const char *want[] = {"  ab", ",", " c", "\xc3\xa9", " \"", "d", "\""};
    size_t at = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_true(tg_str_eq(tg_sim__token_piece(text, &at), tg_str_c(want[i])));
    assert_true(tg_str_eq(tg_sim__token_piece(text, &at), TG_STR(" ")));
    assert_int_equal(at, text.n);
}

static void test_cache_split(void **state)
{
    (void)state;
    tg_sim__head h = {.cached_want = 5, .cache_write_want = 7};
    tg_sim__cache k = tg_sim__cache_of(&h, 20);
    assert_int_equal(k.read, 5);
    assert_int_equal(k.write, 7);
    k = tg_sim__cache_of(&h, 9);
    assert_int_equal(k.read, 5);
    assert_int_equal(k.write, 4);
    k = tg_sim__cache_of(&h, 3);
    assert_int_equal(k.read, 3);
    assert_int_equal(k.write, 0);
}

/* Every data line of an event stream is JSON, or [DONE]. */
static void events_are_json(tg_str s)
{
    size_t i = 0;
    while (i < s.n) {
        const char *nl = memchr(s.p + i, '\n', s.n - i);
        size_t end = nl ? (size_t)(nl - s.p) : s.n;
        tg_str line = tg_str_make(s.p + i, end - i);
        if (tg_str_has_prefix(line, TG_STR("data: ")) && !tg_str_eq(line, TG_STR("data: [DONE]")))
            assert_true(valid_json(tg_str_make(line.p + 6, line.n - 6)));
        i = end + 1;
    }
}

/* The whole answer and the whole stream of call c are JSON. */
static void answer_is_json(tg_sim__ctx *sim, const tg_sim__call *c)
{
    tg_sim__head h;
    tg_sim__plan p;
    tg_buf b;
    tg_buf_init(&b, 1 << 20);
    assert_int_equal(tg_sim__head_init(sim, &h, c), 0);
    assert_int_equal(tg_sim__plan_make(&conf, c, &p), 0);
    assert_int_equal(tg_sim__body(&b, &h, &p, c->prompt_tokens), 0);
    assert_true(valid_json(tg_buf_str(&b)));
    tg_sim__plan_release(&p);
    tg_buf_clear(&b);
    assert_int_equal(tg_sim__plan_make(&conf, c, &p), 0);
    assert_int_equal(tg_sim__ev_begin(&b, &h, &p, c->prompt_tokens), 0);
    for (uint32_t i = 0; i < p.tokens; i++)
        assert_int_equal(tg_sim__ev_piece(&b, &h, &p, tg_sim__piece(&p, i == 0)), 0);
    assert_int_equal(tg_sim__ev_end(&b, &h, &p, c->prompt_tokens, p.tokens), 0);
    events_are_json(tg_buf_str(&b));
    tg_sim__plan_release(&p);
    tg_sim__head_release(&h);
    tg_buf_release(&b);
}

static void test_bodies_are_json(void **state)
{
    (void)state;
    tg_sim__ctx *sim = calloc(1, sizeof *sim);
    tg_arena a;
    tg_sim__call c;
    tg_arena_init(&a);
    forced(&a, 1000, &c);
    answer_is_json(sim, &c);
    forced(&a, 4, &c);
    answer_is_json(sim, &c);
    parse_ok(TG_SIM__MESSAGES,
             "{\"model\":\"m\\\"q\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"}]}",
             &a, &c);
    answer_is_json(sim, &c);
    parse_ok(TG_SIM__CHAT,
             "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
             "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":"
             "{\"properties\":{\"a\\\\b\":{}}}}}],\"tool_choice\":\"required\",\"messages\":"
             "[{\"role\":\"user\",\"content\":\"hi\"}]}",
             &a, &c);
    answer_is_json(sim, &c);
    tg_arena_release(&a);
    free(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_tokens),         cmocka_unit_test(test_dialects_agree),
        cmocka_unit_test(test_messages_validation),  cmocka_unit_test(test_tool_choice),
        cmocka_unit_test(test_tool_args_and_pieces), cmocka_unit_test(test_token_piece),
        cmocka_unit_test(test_cache_split),          cmocka_unit_test(test_bodies_are_json),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
