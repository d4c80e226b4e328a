/* Unit tests for the JSON scanner (src/base/json.c): strict validation with
 * its error offsets and reasons, lookups, iteration, decoding, integers,
 * splicing, and lookups on garbage that must stay in bounds. */
#include "base/json.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) TG_STR(lit)

static int validate(const char *s, int flags, size_t *off, const char **why)
{
    return tg_json_validate(s, strlen(s), flags, off, why);
}

static tg_json_val root(const char *s) { return tg_json_root(s, strlen(s)); }

static void assert_val(tg_json_val v, tg_json_type type, const char *text)
{
    assert_int_equal(v.type, type);
    assert_int_equal(v.n, strlen(text));
    assert_memory_equal(v.p, text, v.n);
}

static void test_valid_corpus(void **state)
{
    (void)state;
    static const char *ok[] = {
        "0", "-0", "1", "-1", "123", "1.5", "-0.25", "1e10", "1E+2", "1e-2", "0.0e0", "-12.5E-3",
        "true", "false", "null", "\"\"", "\"abc\"", "  {}  ", "[]", "[ ]", "{ }", "\r\n\t[1]\n",
        "[1,2,3]", "[[],[[]],{}]", "{\"a\":1}", "{\"a\":{\"b\":[true,false,null]}}",
        "{\"a\" : 1 , \"b\" : \"x\" }", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u0000\"",
        "\"\\u00e9\\u20AC\"", "\"\\ud83d\\ude00\"", "\"\\uD83D\\uDE00\"", "\"\\uffff\"",
        "\"h\xc3\xa9llo\"",         /* é */
        "\"\xe2\x82\xac\"",         /* € */
        "\"\xed\x9f\xbf\"",         /* U+D7FF, last before the surrogates */
        "\"\xee\x80\x80\"",         /* U+E000, first after them */
        "\"\xf0\x9f\x98\x80\"",     /* U+1F600 */
        "\"\xf4\x8f\xbf\xbf\"",     /* U+10FFFF */
        "\"\x7f\"",                 /* DEL is not a control character for JSON */
        "{\"a\":1,\"a\":2}",        /* duplicates pass without the flag */
        "\"a long string that crosses several eight-byte blocks \\n and then some\"",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        size_t off = 999;
        const char *why = NULL;
        int rc = validate(ok[i], 0, &off, &why);
        if (rc) fail_msg("should be valid: %s (%s at %zu)", ok[i], why, off);
        assert_int_equal(off, 999); /* untouched on success */
    }
}

struct bad {
    const char *text;
    size_t len; /* 0: strlen */
    const char *why;
    size_t off;
};

static void test_invalid_corpus(void **state)
{
    (void)state;
    static const struct bad bad[] = {
        {"", 0, "unexpected end of input", 0},
        {"   ", 0, "unexpected end of input", 3},
        {"[1,]", 0, "unexpected character", 3},
        {"{\"a\":1,}", 0, "unexpected character", 7},
        {"{,}", 0, "unexpected character", 1},
        {"[,1]", 0, "unexpected character", 1},
        {"[1 2]", 0, "unexpected character", 3},
        {"{\"a\" 1}", 0, "unexpected character", 5},
        {"{\"a\":}", 0, "unexpected character", 5},
        {"{a:1}", 0, "unexpected character", 1},
        {"{'a':1}", 0, "unexpected character", 1},
        {"[1}", 0, "unexpected character", 2},
        {"{\"a\":1]", 0, "unexpected character", 6},
        {"[1", 0, "unexpected end of input", 2},
        {"01", 0, "trailing data", 1},
        {"[01]", 0, "unexpected character", 2},
        {"-01", 0, "trailing data", 2},
        {"-", 0, "unexpected end of input", 1},
        {"-a", 0, "unexpected character", 1},
        {"+1", 0, "unexpected character", 0},
        {".5", 0, "unexpected character", 0},
        {"1.", 0, "unexpected end of input", 2},
        {"1.e5", 0, "unexpected character", 2},
        {"1e", 0, "unexpected end of input", 2},
        {"1e+", 0, "unexpected end of input", 3},
        {"0x10", 0, "trailing data", 1},
        {"NaN", 0, "unexpected character", 0},
        {"tru", 0, "unexpected end of input", 3},
        {"trUe", 0, "unexpected character", 2},
        {"nul", 0, "unexpected end of input", 3},
        {"falsey", 0, "trailing data", 5},
        {"1 2", 0, "trailing data", 2},
        {"{} x", 0, "trailing data", 3},
        {"\xef\xbb\xbf{}", 0, "unexpected character", 0}, /* no BOM */
        {"\"abc", 0, "unterminated string", 0},
        {"[\"abc]", 0, "unterminated string", 1},
        {"\"abc\\\"", 0, "unterminated string", 0},
        {"\"a\nb\"", 0, "unexpected character", 2},
        {"\"a\tb\"", 0, "unexpected character", 2},
        {"\"\x1f\"", 0, "unexpected character", 1},
        {"\"a\0b\"", 5, "unexpected character", 2},
        {"\"\\x\"", 0, "invalid escape", 1},
        {"\"\\'\"", 0, "invalid escape", 1},
        {"\"\\u12\"", 0, "invalid escape", 1},
        {"\"\\u12g4\"", 0, "invalid escape", 1},
        {"\"ab\\", 0, "invalid escape", 3},
        {"\"\\ud800\"", 0, "invalid escape", 1},         /* lone high */
        {"\"\\udc00\"", 0, "invalid escape", 1},         /* lone low */
        {"\"\\ud800\\u0041\"", 0, "invalid escape", 1},  /* high + non-low */
        {"\"\\ud800\\ud800\"", 0, "invalid escape", 1},  /* high + high */
        {"\"\\ud800x\"", 0, "invalid escape", 1},
        {"\"\x80\"", 0, "invalid UTF-8", 1},             /* lone continuation */
        {"\"\xc0\xaf\"", 0, "invalid UTF-8", 1},         /* overlong '/' */
        {"\"\xc1\xbf\"", 0, "invalid UTF-8", 1},         /* overlong */
        {"\"\xe0\x80\xaf\"", 0, "invalid UTF-8", 1},     /* overlong 3-byte */
        {"\"\xf0\x80\x80\xaf\"", 0, "invalid UTF-8", 1}, /* overlong 4-byte */
        {"\"\xed\xa0\x80\"", 0, "invalid UTF-8", 1},     /* U+D800 encoded */
        {"\"\xed\xbf\xbf\"", 0, "invalid UTF-8", 1},     /* U+DFFF encoded */
        {"\"\xf4\x90\x80\x80\"", 0, "invalid UTF-8", 1}, /* U+110000 */
        {"\"\xf5\x80\x80\x80\"", 0, "invalid UTF-8", 1},
        {"\"\xff\"", 0, "invalid UTF-8", 1},
        {"\"\xc3\"", 0, "invalid UTF-8", 1},             /* truncated */
        {"\"\xe2\x82\"", 0, "invalid UTF-8", 1},
        {"\"\xe2\x82", 0, "invalid UTF-8", 1},           /* truncated at the end */
        {"\"abcdefgh\xc3(\"", 0, "invalid UTF-8", 9},    /* after a fast 8-byte block */
        {"\"abcdefghijklmnop\x01\"", 0, "unexpected character", 17},
        {"{\"k\xff\":1}", 0, "invalid UTF-8", 3},       /* keys are strings too */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text), off = 999;
        const char *why = NULL;
        int rc = tg_json_validate(bad[i].text, len, 0, &off, &why);
        if (rc != TG_EINVAL) fail_msg("should be invalid: case %zu %s", i, bad[i].text);
        if (!why || strcmp(why, bad[i].why) || off != bad[i].off)
            fail_msg("case %zu %s: got \"%s\" at %zu, want \"%s\" at %zu", i, bad[i].text,
                     why ? why : "(null)", off, bad[i].why, bad[i].off);
    }
    /* err_off and why are optional */
    assert_int_equal(tg_json_validate("[", 1, 0, NULL, NULL), TG_EINVAL);
    assert_int_equal(tg_json_validate(NULL, 0, 0, NULL, NULL), TG_EINVAL);
}

static char *nested(size_t depth, char open, char close)
{
    char *s = malloc(2 * depth + 1);
    assert_non_null(s);
    memset(s, open, depth);
    memset(s + depth, close, depth);
    s[2 * depth] = '\0';
    return s;
}

static void test_depth(void **state)
{
    (void)state;
    char *ok = nested(TG_JSON_MAX_DEPTH, '[', ']');
    assert_int_equal(validate(ok, 0, NULL, NULL), TG_OK);
    free(ok);
    size_t off;
    const char *why;
    char *deep = nested(TG_JSON_MAX_DEPTH + 1, '[', ']');
    assert_int_equal(validate(deep, 0, &off, &why), TG_EINVAL);
    assert_string_equal(why, "nesting too deep");
    assert_int_equal(off, TG_JSON_MAX_DEPTH);
    free(deep);
    /* far deeper than any stack would like: still refused, not crashed */
    char *huge = nested(1000000, '[', ']');
    assert_int_equal(validate(huge, 0, &off, &why), TG_EINVAL);
    assert_int_equal(off, TG_JSON_MAX_DEPTH);
    /* and lookups on it (unvalidated) neither recurse nor overrun */
    tg_json_val r = root(huge);
    assert_int_equal(r.type, TG_JSON_ARRAY);
    assert_int_equal(r.n, 2000000);
    free(huge);
}

static void test_depth_mixed(void **state)
{
    (void)state;
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    for (int i = 0; i < TG_JSON_MAX_DEPTH / 2; i++) assert_int_equal(tg_buf_add_lit(&b, "{\"a\":["), 0);
    assert_int_equal(tg_buf_add_lit(&b, "1"), 0);
    for (int i = 0; i < TG_JSON_MAX_DEPTH / 2; i++) assert_int_equal(tg_buf_add_lit(&b, "]}"), 0);
    assert_int_equal(tg_json_validate(b.p, b.n, 0, NULL, NULL), TG_OK);
    tg_buf_clear(&b);
    for (int i = 0; i <= TG_JSON_MAX_DEPTH / 2; i++) assert_int_equal(tg_buf_add_lit(&b, "{\"a\":["), 0);
    size_t off;
    const char *why;
    assert_int_equal(tg_json_validate(b.p, b.n, 0, &off, &why), TG_EINVAL);
    assert_string_equal(why, "nesting too deep");
    assert_int_equal(off, 6 * (TG_JSON_MAX_DEPTH / 2)); /* the 129th opener */
    tg_buf_release(&b);
}

static void expect_dup(const char *s, size_t want_off)
{
    size_t off = 999;
    const char *why = NULL;
    assert_int_equal(validate(s, TG_JSON_NO_DUP_TOPLEVEL, &off, &why), TG_EINVAL);
    assert_string_equal(why, "duplicate key");
    assert_int_equal(off, want_off);
    assert_int_equal(validate(s, 0, NULL, NULL), TG_OK);
}

static void test_duplicates(void **state)
{
    (void)state;
    expect_dup("{\"a\":1,\"a\":2}", 7);
    expect_dup("{\"model\":\"x\",\"mo\\u0064el\":\"y\"}", 13);
    expect_dup("{\"mo\\u0064el\":\"x\",\"model\":\"y\"}", 18);
    expect_dup("{\"\\u00e9\":1,\"\xc3\xa9\":2}", 12);
    expect_dup("{\"\":1,\"\":2}", 6);
    expect_dup("{\"a\":1,\"b\":2,\"c\":3,\"b\":4,\"a\":5}", 19); /* the earliest repeat */
    const int f = TG_JSON_NO_DUP_TOPLEVEL;
    assert_int_equal(validate("{\"a\":{\"b\":1,\"b\":2}}", f, NULL, NULL), TG_OK); /* nested */
    assert_int_equal(validate("[{\"a\":1,\"a\":2}]", f, NULL, NULL), TG_OK);     /* not root */
    assert_int_equal(validate("{\"a\":1,\"A\":2,\"a \":3,\"ab\":4}", f, NULL, NULL), TG_OK);
    assert_int_equal(validate("{\"a\\n\":1,\"a\\t\":2}", f, NULL, NULL), TG_OK);
    assert_int_equal(validate("\"a\"", f, NULL, NULL), TG_OK);
    /* a syntax error before the duplicate wins; one after it loses */
    size_t off;
    const char *why;
    assert_int_equal(validate("{\"a\":1,\"a\":2,", f, &off, &why), TG_EINVAL);
    assert_string_equal(why, "duplicate key");
    assert_int_equal(validate("{\"a\":x,\"a\":2}", f, &off, &why), TG_EINVAL);
    assert_string_equal(why, "unexpected character");
    assert_int_equal(off, 5);
}

/* Root objects past the inline set (64 members) take the sorting path. */
static void build_keys(tg_buf *b, int n, const char *extra)
{
    tg_buf_clear(b);
    assert_int_equal(tg_buf_add_char(b, '{'), 0);
    for (int i = 0; i < n; i++) assert_int_equal(tg_buf_printf(b, "%s\"k%d\":%d", i ? "," : "", i, i), 0);
    assert_int_equal(tg_buf_printf(b, "%s}", extra), 0);
}

static void test_duplicates_many(void **state)
{
    (void)state;
    const int f = TG_JSON_NO_DUP_TOPLEVEL;
    tg_buf b;
    tg_buf_init(&b, 1 << 20);
    size_t off;
    const char *why;
    for (int n = 60; n <= 70; n++) { /* around the boundary */
        build_keys(&b, n, "");
        assert_int_equal(tg_json_validate(b.p, b.n, f, &off, &why), TG_OK);
        build_keys(&b, n, ",\"k0\":0");
        assert_int_equal(tg_json_validate(b.p, b.n, f, &off, &why), TG_EINVAL);
        assert_string_equal(why, "duplicate key");
        assert_int_equal(off, b.n - 7);
    }
    build_keys(&b, 5000, ",\"k4\\u0039\\u0039\":1,\"k17\":2");
    assert_int_equal(tg_json_validate(b.p, b.n, f, &off, &why), TG_EINVAL);
    assert_string_equal(why, "duplicate key");
    /* "k4\u0039\u0039" decodes to "k499": the earlier of the two repeats */
    assert_int_equal(off, (size_t)(strstr(b.p, "\"k4\\u0039") - b.p));
    build_keys(&b, 5000, ",\"k5000\":1");
    assert_int_equal(tg_json_validate(b.p, b.n, f, &off, &why), TG_OK);
    /* past 64 members a later syntax error is reported instead */
    build_keys(&b, 100, ",\"k1\":1,");
    assert_int_equal(tg_json_validate(b.p, b.n, f, &off, &why), TG_EINVAL);
    assert_string_equal(why, "unexpected character");
    tg_buf_release(&b);
}

static const char chat[] =
    "{\n"
    "  \"model\": \"gpt-4o-mini\",\n"
    "  \"messages\": [\n"
    "    {\"role\": \"system\", \"content\": \"Be brief. Quote \\\"exactly\\\".\"},\n"
    "    {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hi {not a key}\"}]}\n"
    "  ],\n"
    "  \"max_tokens\": 256,\n"
    "  \"temperature\": 0.2,\n"
    "  \"stream\": true,\n"
    "  \"stream_options\": {\"include_usage\": true},\n"
    "  \"user\": null,\n"
    "  \"metadata\": {\"feature\": \"summarize\", \"k\\u0065y\": \"v\"}\n"
    "}\n";

static void test_lookup_nested(void **state)
{
    (void)state;
    assert_int_equal(tg_json_validate(chat, sizeof chat - 1, TG_JSON_NO_DUP_TOPLEVEL, NULL, NULL), 0);
    tg_json_val r = tg_json_root(chat, sizeof chat - 1);
    assert_int_equal(r.type, TG_JSON_OBJECT);
    assert_ptr_equal(r.p, chat);
    assert_int_equal(r.n, sizeof chat - 2); /* trailing newline excluded */
    assert_val(tg_json_get(r, S("model")), TG_JSON_STRING, "\"gpt-4o-mini\"");
    assert_val(tg_json_get(r, S("max_tokens")), TG_JSON_NUMBER, "256");
    assert_val(tg_json_get(r, S("temperature")), TG_JSON_NUMBER, "0.2");
    assert_val(tg_json_get(r, S("stream")), TG_JSON_TRUE, "true");
    assert_val(tg_json_get(r, S("user")), TG_JSON_NULL, "null");
    tg_json_val so = tg_json_get(r, S("stream_options"));
    assert_val(tg_json_get(so, S("include_usage")), TG_JSON_TRUE, "true");
    tg_json_val md = tg_json_get(r, S("metadata"));
    assert_val(tg_json_get(md, S("feature")), TG_JSON_STRING, "\"summarize\"");
    assert_val(tg_json_get(md, S("key")), TG_JSON_STRING, "\"v\"");
    /* absent keys, prefixes, wrong containers */
    assert_int_equal(tg_json_get(r, S("mode")).type, TG_JSON_NONE);
    assert_int_equal(tg_json_get(r, S("models")).type, TG_JSON_NONE);
    assert_int_equal(tg_json_get(r, S("include_usage")).type, TG_JSON_NONE); /* not at this level */
    assert_int_equal(tg_json_get(r, S("role")).type, TG_JSON_NONE);
    tg_json_val msgs = tg_json_get(r, S("messages"));
    assert_int_equal(msgs.type, TG_JSON_ARRAY);
    assert_int_equal(tg_json_get(msgs, S("role")).type, TG_JSON_NONE);
    assert_int_equal(tg_json_get(tg_json_get(r, S("model")), S("x")).type, TG_JSON_NONE);
    assert_int_equal(tg_json_get((tg_json_val){0}, S("x")).type, TG_JSON_NONE);
    /* walk into the messages */
    tg_json_iter it = tg_json_iter_init(msgs);
    tg_json_val k, m;
    assert_true(tg_json_iter_next(&it, &k, &m));
    assert_int_equal(k.type, TG_JSON_NONE);
    assert_val(tg_json_get(m, S("role")), TG_JSON_STRING, "\"system\"");
    assert_val(tg_json_get(m, S("content")), TG_JSON_STRING, "\"Be brief. Quote \\\"exactly\\\".\"");
    assert_true(tg_json_iter_next(&it, &k, &m));
    tg_json_val parts = tg_json_get(m, S("content"));
    assert_int_equal(parts.type, TG_JSON_ARRAY);
    tg_json_iter pi = tg_json_iter_init(parts);
    tg_json_val part;
    assert_true(tg_json_iter_next(&pi, NULL, &part));
    assert_val(tg_json_get(part, S("text")), TG_JSON_STRING, "\"hi {not a key}\"");
    assert_false(tg_json_iter_next(&pi, NULL, &part));
    assert_false(tg_json_iter_next(&it, &k, &m));
    assert_false(tg_json_iter_next(&it, &k, &m)); /* stays finished */
}

static void test_escaped_keys(void **state)
{
    (void)state;
    const char *s = "{\"a\\\"b\":1,\"mo\\u0064el\":2,\"\\u00e9t\\u00e9\":3,\"\\ud83d\\ude00\":4,"
                    "\"\":5,\"tab\\t\":6,\"sl\\/ash\":7,\"model\":8}";
    assert_int_equal(validate(s, 0, NULL, NULL), TG_OK);
    tg_json_val r = root(s);
    assert_val(tg_json_get(r, S("a\"b")), TG_JSON_NUMBER, "1");
    assert_val(tg_json_get(r, S("model")), TG_JSON_NUMBER, "2"); /* the first one */
    assert_val(tg_json_get(r, S("\xc3\xa9t\xc3\xa9")), TG_JSON_NUMBER, "3");
    assert_val(tg_json_get(r, S("\xf0\x9f\x98\x80")), TG_JSON_NUMBER, "4");
    assert_val(tg_json_get(r, S("")), TG_JSON_NUMBER, "5");
    assert_val(tg_json_get(r, TG_STR_NULL), TG_JSON_NUMBER, "5");
    assert_val(tg_json_get(r, S("tab\t")), TG_JSON_NUMBER, "6");
    assert_val(tg_json_get(r, S("sl/ash")), TG_JSON_NUMBER, "7");
    assert_int_equal(tg_json_get(r, S("mo\\u0064el")).type, TG_JSON_NONE); /* raw form */
    assert_int_equal(tg_json_get(r, S("mod")).type, TG_JSON_NONE);
    assert_int_equal(tg_json_get(r, S("\xc3\xa9t")).type, TG_JSON_NONE);
    assert_int_equal(tg_json_get(r, S("\xc3\xa9t\xc3\xa9x")).type, TG_JSON_NONE);
    /* a key with a NUL byte in it */
    const char *z = "{\"a\\u0000b\":1}";
    assert_val(tg_json_get(root(z), (tg_str){"a\0b", 3}), TG_JSON_NUMBER, "1");
    assert_int_equal(tg_json_get(root(z), S("a")).type, TG_JSON_NONE);
}

static void test_iteration(void **state)
{
    (void)state;
    const char *s = " [ 1 , \"two\" , {\"k\":[3]} , [] , -4.5e1 , true , false , null ] ";
    assert_int_equal(validate(s, 0, NULL, NULL), TG_OK);
    tg_json_iter it = tg_json_iter_init(root(s));
    static const struct {
        tg_json_type t;
        const char *text;
    } want[] = {{TG_JSON_NUMBER, "1"}, {TG_JSON_STRING, "\"two\""}, {TG_JSON_OBJECT, "{\"k\":[3]}"},
                {TG_JSON_ARRAY, "[]"}, {TG_JSON_NUMBER, "-4.5e1"},  {TG_JSON_TRUE, "true"},
                {TG_JSON_FALSE, "false"}, {TG_JSON_NULL, "null"}};
    tg_json_val k, v;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        assert_true(tg_json_iter_next(&it, &k, &v));
        assert_int_equal(k.type, TG_JSON_NONE);
        assert_val(v, want[i].t, want[i].text);
    }
    assert_false(tg_json_iter_next(&it, &k, &v));
    assert_int_equal(v.type, TG_JSON_NONE);

    const char *o = "{ \"a\" : 1 ,\"b\":{\"c\":\"}\"},\"d\\n\":[\"]\"] }";
    assert_int_equal(validate(o, 0, NULL, NULL), TG_OK);
    it = tg_json_iter_init(root(o));
    assert_true(tg_json_iter_next(&it, &k, &v));
    assert_val(k, TG_JSON_STRING, "\"a\"");
    assert_val(v, TG_JSON_NUMBER, "1");
    assert_true(tg_json_iter_next(&it, &k, &v));
    assert_val(k, TG_JSON_STRING, "\"b\"");
    assert_val(v, TG_JSON_OBJECT, "{\"c\":\"}\"}");
    assert_true(tg_json_iter_next(&it, &k, &v));
    assert_val(k, TG_JSON_STRING, "\"d\\n\"");
    assert_val(v, TG_JSON_ARRAY, "[\"]\"]");
    assert_false(tg_json_iter_next(&it, &k, &v));

    /* empty containers and non-containers iterate nothing */
    const char *empties[] = {"{}", "[]", "{ \n }", "[\t]", "\"s\"", "1", "null"};
    for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
        it = tg_json_iter_init(root(empties[i]));
        assert_false(tg_json_iter_next(&it, &k, &v));
    }
    it = tg_json_iter_init((tg_json_val){0});
    assert_false(tg_json_iter_next(&it, NULL, NULL));
}

static void expect_decode(const char *json, const char *want, size_t want_n)
{
    assert_int_equal(validate(json, 0, NULL, NULL), TG_OK);
    tg_buf b;
    tg_buf_init(&b, 1024);
    assert_int_equal(tg_buf_add_lit(&b, ">"), 0); /* decode appends */
    assert_int_equal(tg_json_str_decode(root(json), &b), TG_OK);
    assert_int_equal(b.n, want_n + 1);
    assert_memory_equal(b.p + 1, want, want_n);
    tg_buf_release(&b);
}

static void test_decode(void **state)
{
    (void)state;
    expect_decode("\"plain\"", "plain", 5);
    expect_decode("\"\"", "", 0);
    expect_decode("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
    expect_decode("\"caf\\u00e9\"", "caf\xc3\xa9", 5);
    expect_decode("\"\\u0041\\u00E9\\u20ac\"", "A\xc3\xa9\xe2\x82\xac", 6);
    expect_decode("\"\\u07ff\\u0800\\uffff\"", "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 8);
    expect_decode("\"\\ud83d\\ude00!\"", "\xf0\x9f\x98\x80!", 5);
    expect_decode("\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 4);  /* U+10000 */
    expect_decode("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4);  /* U+10FFFF */
    expect_decode("\"a\\u0000b\"", "a\0b", 3);
    expect_decode("\"raw \xc3\xa9 stays\"", "raw \xc3\xa9 stays", 12);

    tg_buf b;
    tg_buf_init(&b, 1024);
    assert_int_equal(tg_json_str_decode(root("123"), &b), TG_EINVAL);
    assert_int_equal(tg_json_str_decode(root("[\"a\"]"), &b), TG_EINVAL);
    assert_int_equal(tg_json_str_decode((tg_json_val){0}, &b), TG_EINVAL);
    /* unvalidated bad escapes are refused and leave the buffer as it was */
    assert_int_equal(tg_buf_add_lit(&b, "keep"), 0);
    const char *badesc[] = {"\"ab\\x\"", "\"ab\\ud800\"", "\"ab\\u12\"", "\"\\udc00\""};
    for (size_t i = 0; i < sizeof badesc / sizeof *badesc; i++) {
        tg_json_val v = {TG_JSON_STRING, badesc[i], strlen(badesc[i])};
        assert_int_equal(tg_json_str_decode(v, &b), TG_EINVAL);
        assert_int_equal(b.n, 4);
        assert_string_equal(b.p, "keep");
    }
    tg_buf_release(&b);

    /* the cap: decoded fits exactly even though the raw text is longer */
    tg_buf_init(&b, 3);
    assert_int_equal(tg_json_str_decode(root("\"\\u0041\\u0042\\u0043\""), &b), TG_OK);
    assert_string_equal(b.p, "ABC");
    assert_int_equal(tg_json_str_decode(root("\"x\""), &b), TG_ETOOBIG);
    assert_int_equal(b.n, 3);
    assert_string_equal(b.p, "ABC");
    tg_buf_clear(&b);
    assert_int_equal(tg_json_str_decode(root("\"ab\\u00e9\""), &b), TG_ETOOBIG); /* 4 bytes */
    assert_int_equal(b.n, 0);
    tg_buf_release(&b);

    /* zero-copy views */
    tg_str sv;
    assert_true(tg_json_str_view(root("\"gpt-4o\""), &sv));
    assert_true(tg_str_eq(sv, S("gpt-4o")));
    assert_true(tg_json_str_view(root("\"\""), &sv));
    assert_int_equal(sv.n, 0);
    assert_false(tg_json_str_view(root("\"a\\nb\""), &sv));
    assert_false(tg_json_str_view(root("12"), &sv));
    assert_false(tg_json_str_view((tg_json_val){0}, &sv));
}

static int int_of(const char *s, int64_t *out) { return tg_json_int(root(s), out); }

static void test_int(void **state)
{
    (void)state;
    int64_t v = 7;
    assert_int_equal(int_of("0", &v), TG_OK);
    assert_int_equal(v, 0);
    assert_int_equal(int_of("-0", &v), TG_OK);
    assert_int_equal(v, 0);
    assert_int_equal(int_of("42", &v), TG_OK);
    assert_int_equal(v, 42);
    assert_int_equal(int_of("-17", &v), TG_OK);
    assert_int_equal(v, -17);
    assert_int_equal(int_of("9223372036854775807", &v), TG_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(int_of("-9223372036854775808", &v), TG_OK);
    assert_true(v == INT64_MIN);
    v = 7;
    const char *bad[] = {"9223372036854775808", "-9223372036854775809", "18446744073709551616",
                         "99999999999999999999999", "1.0", "1e3", "1E3", "-", "\"1\"", "true",
                         "null", "[1]", "01", "-01"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (int_of(bad[i], &v) != TG_EINVAL) fail_msg("should not be an int64: %s", bad[i]);
        assert_int_equal(v, 7); /* untouched */
    }
    assert_int_equal(tg_json_int((tg_json_val){0}, &v), TG_EINVAL);
    /* inside a document */
    const char *d = "{\"max_tokens\":4096,\"n\":-2}";
    assert_int_equal(tg_json_int(tg_json_get(root(d), S("max_tokens")), &v), TG_OK);
    assert_int_equal(v, 4096);
    assert_int_equal(tg_json_int(tg_json_get(root(d), S("n")), &v), TG_OK);
    assert_int_equal(v, -2);
    assert_int_equal(tg_json_int(tg_json_get(root(d), S("x")), &v), TG_EINVAL);
}

static void test_apply(void **state)
{
    (void)state;
    const char *s = "{\"model\":\"fast\",\"stream\":true}";
    tg_str src = tg_str_c(s);
    tg_buf b;
    tg_buf_init(&b, 1024);

    assert_int_equal(tg_json_apply(src, NULL, 0, &b), TG_OK);
    assert_string_equal(b.p, s);

    /* replace the model, insert stream_options after stream */
    tg_json_val r = root(s), m = tg_json_get(r, S("model")), st = tg_json_get(r, S("stream"));
    tg_json_splice sp[] = {
        {(size_t)(m.p - s), m.n, S("\"gpt-4o-mini\"")},
        {(size_t)(st.p - s) + st.n, 0, S(",\"stream_options\":{\"include_usage\":true}")},
    };
    tg_buf_clear(&b);
    assert_int_equal(tg_json_apply(src, sp, 2, &b), TG_OK);
    assert_string_equal(b.p, "{\"model\":\"gpt-4o-mini\",\"stream\":true,"
                             "\"stream_options\":{\"include_usage\":true}}");
    assert_int_equal(tg_json_validate(b.p, b.n, TG_JSON_NO_DUP_TOPLEVEL, NULL, NULL), TG_OK);

    /* inserts at the start and end, two inserts at one offset, a deletion */
    tg_str abc = S("abcdef");
    tg_json_splice e[] = {{0, 0, S("<")}, {2, 0, S("1")}, {2, 0, S("2")}, {2, 2, S("")},
                          {4, 0, S("|")}, {6, 0, S(">")}};
    tg_buf_clear(&b);
    assert_int_equal(tg_json_apply(abc, e, 6, &b), TG_OK);
    assert_string_equal(b.p, "<ab12|ef>");
    /* replacing everything */
    tg_json_splice all = {0, 6, S("xyz")};
    tg_buf_clear(&b);
    assert_int_equal(tg_json_apply(abc, &all, 1, &b), TG_OK);
    assert_string_equal(b.p, "xyz");

    /* unsorted, overlapping and out-of-range splices leave out unchanged */
    tg_buf_clear(&b);
    assert_int_equal(tg_buf_add_lit(&b, "keep"), 0);
    tg_json_splice unsorted[] = {{3, 0, S("x")}, {1, 0, S("y")}};
    tg_json_splice overlap[] = {{1, 3, S("x")}, {2, 1, S("y")}};
    tg_json_splice inside[] = {{1, 3, S("x")}, {3, 0, S("y")}};
    tg_json_splice past[] = {{7, 0, S("x")}};
    tg_json_splice toolong[] = {{4, 3, S("x")}};
    tg_json_splice huge[] = {{0, SIZE_MAX, S("x")}};
    assert_int_equal(tg_json_apply(abc, unsorted, 2, &b), TG_EINVAL);
    assert_int_equal(tg_json_apply(abc, overlap, 2, &b), TG_EINVAL);
    assert_int_equal(tg_json_apply(abc, inside, 2, &b), TG_EINVAL);
    assert_int_equal(tg_json_apply(abc, past, 1, &b), TG_EINVAL);
    assert_int_equal(tg_json_apply(abc, toolong, 1, &b), TG_EINVAL);
    assert_int_equal(tg_json_apply(abc, huge, 1, &b), TG_EINVAL);
    assert_int_equal(tg_json_apply(abc, NULL, 1, &b), TG_EINVAL);
    assert_string_equal(b.p, "keep");
    tg_buf_release(&b);

    /* the cap is the buffer's: TG_ETOOBIG, nothing half-written */
    tg_buf_init(&b, 8);
    assert_int_equal(tg_buf_add_lit(&b, "ab"), 0);
    assert_int_equal(tg_json_apply(abc, NULL, 0, &b), TG_OK); /* exactly 8 */
    tg_buf_clear(&b);
    assert_int_equal(tg_buf_add_lit(&b, "ab"), 0);
    assert_int_equal(tg_json_apply(abc, &(tg_json_splice){6, 0, S("!")}, 1, &b), TG_ETOOBIG);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.p, "ab");
    tg_buf_release(&b);
}

/* Lookups on text nobody validated: they must answer something harmless
 * and read nothing outside the span. Each input is copied to a heap block
 * of its exact size so that ASan sees any overrun. */
static void poke(const char *text, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, text, n);
    tg_buf b;
    tg_buf_init(&b, 1 << 16);
    tg_json_val r = tg_json_root(p, n);
    if (r.type != TG_JSON_NONE) {
        assert_true(r.p >= p && r.n >= 1 && r.p + r.n <= p + n);
    }
    tg_json_val forced[] = {r, {TG_JSON_OBJECT, p, n}, {TG_JSON_ARRAY, p, n}, {TG_JSON_STRING, p, n}};
    for (size_t f = 0; f < 4; f++) {
        (void)tg_json_get(forced[f], S("model"));
        (void)tg_json_get(forced[f], S("a\"b"));
        tg_json_iter it = tg_json_iter_init(forced[f]);
        tg_json_val k, v;
        for (int i = 0; i < 10000 && tg_json_iter_next(&it, &k, &v); i++) {
            assert_true(v.p >= p && v.p + v.n <= p + n && v.n > 0);
            int64_t x;
            (void)tg_json_int(v, &x);
            (void)tg_json_str_decode(v, &b);
            (void)tg_json_str_decode(k, &b);
            (void)tg_json_get(v, S("x"));
        }
        int64_t x;
        (void)tg_json_int(forced[f], &x);
        (void)tg_json_str_decode(forced[f], &b);
        tg_str sv;
        (void)tg_json_str_view(forced[f], &sv);
    }
    tg_buf_release(&b);
    free(p);
}

static void test_garbage(void **state)
{
    (void)state;
    static const char *g[] = {
        "", "{", "[", "\"", "\\", "}", "]", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":\"",
        "{\"a\\", "{\"a\":\"\\", "[1,2", "[\"\\\"]", "tru", "fals", "n", "-", "{\"a\":[}",
        "{]", "[}", "{\"a\" 1 \"b\" 2}", "{:}", "{\"\\u12\":1}", "{\"\\ud800\":1}",
        "\"\\ud800", "\"\\u", "{\"model\":\"x\\", "{\"model\"", "{\"model\":",
        "{\"a\":1,,,,\"model\":2}", "[[[[[[[[[[", "]]]]]]]", "{\"a\":{\"b\":{\"c\":",
        "\xff\xfe\xfd", "{\"\xff\":\"\xc0\"}",
    };
    for (size_t i = 0; i < sizeof g / sizeof *g; i++) poke(g[i], strlen(g[i]));
    /* specific answers */
    assert_int_equal(root("{\"a\":1").type, TG_JSON_NONE); /* unclosed */
    assert_int_equal(root("\"abc").type, TG_JSON_NONE);
    assert_int_equal(root("tru").type, TG_JSON_NONE);
    assert_int_equal(root("").type, TG_JSON_NONE);
    assert_int_equal(root("   ").type, TG_JSON_NONE);
    assert_int_equal(root("x").type, TG_JSON_NONE);
    assert_int_equal(tg_json_root(NULL, 5).type, TG_JSON_NONE);
    /* a truncated view of valid text: the lookups stop at its end */
    tg_json_val cut = {TG_JSON_OBJECT, chat, 40};
    assert_int_equal(tg_json_get(cut, S("messages")).type, TG_JSON_NONE);
    poke(chat, 40);
    /* pseudo-random bytes from a JSON-ish alphabet */
    static const char alpha[] = "{}[]\",:\\ ntrufalse0123456789-+.eEu\xc3\xa9\xff";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char buf[64];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(round % 64);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = alpha[x % (sizeof alpha - 1)];
        }
        size_t off = SIZE_MAX;
        const char *why = NULL;
        int rc = tg_json_validate(buf, n, TG_JSON_NO_DUP_TOPLEVEL, &off, &why);
        assert_true(rc == TG_OK || (rc == TG_EINVAL && why && off <= n));
        poke(buf, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_corpus),  cmocka_unit_test(test_invalid_corpus),
        cmocka_unit_test(test_depth),         cmocka_unit_test(test_depth_mixed),
        cmocka_unit_test(test_duplicates),    cmocka_unit_test(test_duplicates_many),
        cmocka_unit_test(test_lookup_nested), cmocka_unit_test(test_escaped_keys),
        cmocka_unit_test(test_iteration),     cmocka_unit_test(test_decode),
        cmocka_unit_test(test_int),           cmocka_unit_test(test_apply),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
