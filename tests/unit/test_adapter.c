/* The OpenAI adapter: request reading, the in-place rewrite of the model
 * and stream_options (every other byte untouched), usage extraction. */
#include "route/adapters/openai.h"
#include "base/jsonw.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* An offering as the config loader builds it (upstream_json included). */
static tg_offering off(const char *upstream, tg_buf *quoted)
{
    static tg_provider p = {.name = "p"};
    tg_buf_init(quoted, 4096);
    assert_int_equal(tg_jsonw_str(quoted, tg_str_c(upstream)), 0);
    return (tg_offering){.id = "p/x", .provider = &p, .upstream_model = (char *)upstream,
                         .upstream_json = quoted->p};
}

/* Rewrites body for an offering and returns the result in out. */
static int rewrite(const char *body, tg_endpoint ep, const char *upstream, tg_buf *out,
                   tg_openai_req *req)
{
    tg_buf scratch;
    tg_errmsg err;
    const char *param;
    tg_buf_init(&scratch, 1024);
    tg_buf_init(out, 1 << 20);
    int rc = tg_openai_read_request(tg_str_c(body), ep, &scratch, req, &err, &param);
    if (!rc) {
        tg_buf quoted;
        tg_offering o = off(upstream, &quoted);
        rc = tg_openai_upstream_body(tg_str_c(body), req, &o, out);
        tg_buf_release(&quoted);
    }
    tg_buf_release(&scratch);
    return rc;
}

static void expect(const char *body, tg_endpoint ep, const char *upstream, const char *want)
{
    tg_buf out;
    tg_openai_req req;
    assert_int_equal(rewrite(body, ep, upstream, &out, &req), 0);
    assert_string_equal(out.p, want);
    size_t eo;
    assert_int_equal(tg_json_validate(out.p, out.n, TG_JSON_NO_DUP_TOPLEVEL, &eo, NULL), 0);
    tg_buf_release(&out);
}

static void test_model_only(void **state)
{
    (void)state;
    expect("{\"model\":\"fast\",\"messages\":[],\"x_unknown\":{\"keep\": [1, 2]}}", TG_EP_CHAT, "gpt-4o-mini",
           "{\"model\":\"gpt-4o-mini\",\"messages\":[],\"x_unknown\":{\"keep\": [1, 2]}}");
    expect(" {\"input\":\"a\", \"model\" : \"e\"} ", TG_EP_EMBEDDINGS, "text-embedding-3-small",
           " {\"input\":\"a\", \"model\" : \"text-embedding-3-small\"} ");
    /* a stream that already asks for usage: only the model changes */
    expect("{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", TG_EP_CHAT, "u",
           "{\"model\":\"u\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    /* quotes in the upstream name are escaped */
    expect("{\"model\":\"m\"}", TG_EP_CHAT, "we\"ird", "{\"model\":\"we\\\"ird\"}");
}

static void test_stream_usage(void **state)
{
    (void)state;
    expect("{\"model\":\"m\",\"stream\":true}", TG_EP_CHAT, "u",
           "{\"model\":\"u\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    expect("{\"stream_options\":{},\"stream\":true,\"model\":\"m\"}", TG_EP_CHAT, "u",
           "{\"stream_options\":{\"include_usage\":true},\"stream\":true,\"model\":\"u\"}");
    expect("{\"stream_options\":{\"other\":1},\"model\":\"m\",\"stream\":true}", TG_EP_COMPLETIONS, "u",
           "{\"stream_options\":{\"include_usage\":true,\"other\":1},\"model\":\"u\",\"stream\":true}");
    expect("{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":false}}", TG_EP_CHAT, "u",
           "{\"model\":\"u\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    expect("{\"model\":\"m\",\"stream\":true,\"stream_options\":null}", TG_EP_CHAT, "u",
           "{\"model\":\"u\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    tg_buf out;
    tg_openai_req req;
    assert_int_equal(rewrite("{\"model\":\"m\",\"stream\":true}", TG_EP_CHAT, "u", &out, &req), 0);
    assert_true(req.stream);
    assert_false(req.include_usage); /* the relay will hide the usage chunk */
    tg_buf_release(&out);
}

static void test_bad_requests(void **state)
{
    (void)state;
    static const struct {
        const char *body, *msg, *param;
    } cases[] = {
        {"", "the request body is empty; send a JSON object", NULL},
        {"{\"model\":", "the request body is not valid JSON", NULL},
        {"[1]", "the request body must be a JSON object", NULL},
        {"{\"messages\":[]}", "you must provide a model parameter", "model"},
        {"{\"model\":7}", "model must be a string", "model"},
        {"{\"model\":\"m\",\"stream\":\"yes\"}", "stream must be a boolean", "stream"},
        {"{\"model\":\"m\",\"stream_options\":1}", "stream_options must be an object", "stream_options"},
        {"{\"model\":\"a\",\"model\":\"b\"}", "duplicate key", NULL},
        {"{\"model\":\"m\",\"max_tokens\":-1}", "max_tokens must be a whole number from 0", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":\"9\"}", "max_tokens must be a whole number", "max_tokens"},
        {"{\"model\":\"m\",\"max_completion_tokens\":1.5}", "max_completion_tokens must be", "max_completion_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":100000001}", "to 100000000", "max_tokens"},
        {"{\"model\":\"m\",\"n\":0}", "n must be a whole number from 1 to 128", "n"},
        {"{\"model\":\"m\",\"n\":129}", "n must be", "n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_buf scratch;
        tg_errmsg err;
        tg_openai_req req;
        const char *param;
        tg_buf_init(&scratch, 64);
        assert_int_equal(tg_openai_read_request(tg_str_c(cases[i].body), TG_EP_CHAT, &scratch, &req,
                                                &err, &param), TG_EINVAL);
        assert_non_null(strstr(err.msg, cases[i].msg));
        if (cases[i].param) assert_string_equal(param, cases[i].param);
        else assert_null(param);
        tg_buf_release(&scratch);
    }
}

/* max_completion_tokens wins over max_tokens; absent is -1; n defaults to 1. */
static void test_limits_read(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int64_t max, n;
    } cases[] = {
        {"{\"model\":\"m\"}", -1, 1},
        {"{\"model\":\"m\",\"max_tokens\":50,\"n\":3}", 50, 3},
        {"{\"model\":\"m\",\"max_tokens\":50,\"max_completion_tokens\":70}", 70, 1},
        {"{\"model\":\"m\",\"max_completion_tokens\":0,\"max_tokens\":9}", 0, 1},
        {"{\"model\":\"m\",\"max_tokens\":null,\"n\":null}", -1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_buf scratch;
        tg_errmsg err;
        tg_openai_req req;
        const char *param;
        tg_buf_init(&scratch, 64);
        assert_int_equal(tg_openai_read_request(tg_str_c(cases[i].body), TG_EP_CHAT, &scratch, &req,
                                                &err, &param), TG_OK);
        assert_int_equal(req.max_tokens, cases[i].max);
        assert_int_equal(req.n, cases[i].n);
        tg_buf_release(&scratch);
    }
}

static void test_escaped_model_name(void **state)
{
    (void)state;
    tg_buf scratch;
    tg_errmsg err;
    tg_openai_req req;
    const char *param;
    tg_buf_init(&scratch, 64);
    static const char body[] = "{\"model\":\"f\\u0061st\"}";
    assert_int_equal(tg_openai_read_request(tg_str_c(body), TG_EP_CHAT, &scratch, &req, &err, &param), 0);
    assert_true(tg_str_eq(req.model_name, TG_STR("fast")));
    tg_buf_release(&scratch);
}

static void test_usage(void **state)
{
    (void)state;
    static const char resp[] =
        "{\"id\":\"x\",\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17,"
        "\"prompt_tokens_details\":{\"cached_tokens\":4},\"completion_tokens_details\":{\"reasoning_tokens\":2}}}";
    tg_usage u = {0};
    tg_openai_usage(tg_json_root(resp, sizeof resp - 1), &u);
    assert_true(u.present);
    assert_int_equal(u.prompt, 12);
    assert_int_equal(u.completion, 5);
    assert_int_equal(u.total, 17);
    assert_int_equal(u.cached, 4);
    assert_int_equal(u.reasoning, 2);
    tg_usage none = {0};
    static const char chunk[] = "{\"choices\":[],\"usage\":null}";
    tg_openai_usage(tg_json_root(chunk, sizeof chunk - 1), &none);
    assert_false(none.present);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_only),
        cmocka_unit_test(test_stream_usage),
        cmocka_unit_test(test_bad_requests), cmocka_unit_test(test_limits_read),
        cmocka_unit_test(test_escaped_model_name),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
