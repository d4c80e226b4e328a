/* The Anthropic dialect adapter: reading a client's Messages request (what
 * it accepts, each refusal with its message and param), the upstream body
 * (only the model changes), Anthropic's error bodies and types, and usage
 * in OpenAI's convention. */
#include "route/adapters/anthropic.h"
#include "base/jsonw.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static int read_req(const char *body, tg_anthropic_req *req, tg_buf *scratch, tg_errmsg *err,
                    const char **param)
{
    tg_buf_init(scratch, 1024);
    return tg_anthropic_read_request(tg_str_c(body), scratch, req, err, param);
}

static void test_read_ok(void **state)
{
    (void)state;
    static const char body[] =
        " {\"model\":\"claude-x\",\"max_tokens\":1024,\"system\":\"Be brief.\","
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,\"temperature\":0.2,"
        "\"top_p\":1,\"top_k\":5,\"stop_sequences\":[\"X\"],\"metadata\":{\"user_id\":\"u\"},"
        "\"tools\":[],\"tool_choice\":{\"type\":\"auto\"},\"thinking\":{\"type\":\"disabled\"},"
        "\"future_field\":{\"ok\":1}} ";
    tg_anthropic_req req;
    tg_buf scratch;
    tg_errmsg err;
    const char *param = "x";
    assert_int_equal(read_req(body, &req, &scratch, &err, &param), TG_OK);
    assert_null(param);
    assert_true(tg_str_eq(req.model_name, TG_STR("claude-x")));
    assert_int_equal(req.model.n, strlen("\"claude-x\""));
    assert_int_equal(req.max_tokens, 1024);
    assert_true(req.stream);
    assert_int_equal(req.messages.type, TG_JSON_ARRAY);
    assert_int_equal(req.system.type, TG_JSON_STRING);
    assert_int_equal(req.input_bytes, req.messages.n + req.system.n);
    assert_int_equal(req.root.type, TG_JSON_OBJECT);
    tg_buf_release(&scratch);

    /* system as text blocks, escaped keys and model, stream null, no system */
    static const char b2[] = "{\"m\\u006fdel\":\"cl\\u0061ude\",\"max_tokens\":1,\"stream\":null,"
                             "\"system\":[{\"type\":\"text\",\"text\":\"a\",\"cache_control\":{"
                             "\"type\":\"ephemeral\"}}],"
                             "\"messages\":[{}]}";
    assert_int_equal(read_req(b2, &req, &scratch, &err, &param), TG_OK);
    assert_true(tg_str_eq(req.model_name, TG_STR("claude")));
    assert_false(req.stream);
    assert_int_equal(req.system.type, TG_JSON_ARRAY);
    tg_buf_release(&scratch);
    static const char b3[] =
        "{\"model\":\"m\",\"max_tokens\":100000000,\"messages\":[1],\"system\":null}";
    assert_int_equal(read_req(b3, &req, &scratch, &err, &param), TG_OK);
    assert_int_equal(req.system.type, TG_JSON_NONE);
    assert_int_equal(req.input_bytes, 3);
    tg_buf_release(&scratch);
}

static void test_read_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *body, *msg, *param;
    } cases[] = {
        {"", "the request body is empty", NULL},
        {"{\"model\":", "the request body is not valid JSON", NULL},
        {"[]", "must be a JSON object", NULL},
        {"{\"model\":\"a\",\"model\":\"b\"}", "duplicate key", NULL},
        {"{\"max_tokens\":1,\"messages\":[1]}", "model: field required", "model"},
        {"{\"model\":1,\"max_tokens\":1,\"messages\":[1]}", "model must be a string", "model"},
        {"{\"model\":\"m\",\"messages\":[1]}", "max_tokens: field required", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":0,\"messages\":[1]}",
         "max_tokens must be a whole number from 1", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":1.5,\"messages\":[1]}", "max_tokens must be",
         "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":100000001,\"messages\":[1]}", "to 100000000",
         "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":99999999999999999999999,\"messages\":[1]}",
         "max_tokens must be", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":\"5\",\"messages\":[1]}", "max_tokens must be",
         "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":5}", "messages: field required", "messages"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":{}}", "messages must be an array",
         "messages"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}", "at least one message", "messages"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"stream\":\"yes\"}",
         "stream must be a boolean", "stream"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"system\":5}",
         "system must be a string or an array of text blocks", "system"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"system\":[{\"type\":\"image\"}]}",
         "system must be", "system"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"system\":[{\"type\":\"text\","
         "\"text\":3}]}",
         "system must be", "system"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"temperature\":\"hot\"}",
         "temperature must be a number", "temperature"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"top_p\":true}",
         "top_p must be a number", "top_p"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"top_k\":-1}",
         "top_k must be a whole number", "top_k"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"stop_sequences\":\"X\"}",
         "stop_sequences must be an array of strings", "stop_sequences"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"stop_sequences\":[\"a\",1]}",
         "stop_sequences must be an array of strings", "stop_sequences"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"metadata\":[]}",
         "metadata must be an object", "metadata"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"tools\":{}}",
         "tools must be an array", "tools"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"tool_choice\":\"auto\"}",
         "tool_choice must be an object", "tool_choice"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[1],\"thinking\":true}",
         "thinking must be an object", "thinking"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_anthropic_req req;
        tg_buf scratch;
        tg_errmsg err;
        const char *param = "unset";
        assert_int_equal(read_req(cases[i].body, &req, &scratch, &err, &param), TG_EINVAL);
        if (!strstr(err.msg, cases[i].msg)) fail_msg("case %zu: %s", i, err.msg);
        if (cases[i].param)
            assert_string_equal(param, cases[i].param);
        else
            assert_null(param);
        tg_buf_release(&scratch);
    }
}

static void test_upstream_body(void **state)
{
    (void)state;
    static const char body[] =
        "{\"max_tokens\":5, \"model\" : \"fa\\u0073t\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"x\"}],\"metadata\":{\"user_id\":\"u\"},\"x\":[1,2]}";
    tg_anthropic_req req;
    tg_buf scratch, out, q;
    tg_errmsg err;
    const char *param;
    assert_int_equal(read_req(body, &req, &scratch, &err, &param), TG_OK);
    tg_buf_init(&q, 64);
    assert_int_equal(tg_jsonw_str(&q, TG_STR("claude-\"3\"")), TG_OK);
    tg_provider p = {.name = "anthropic"};
    tg_offering off = {
        .id = "a/c", .provider = &p, .upstream_model = "claude-\"3\"", .upstream_json = q.p};
    tg_buf_init(&out, 4096);
    assert_int_equal(tg_anthropic_upstream_body(tg_str_c(body), &req, &off, &out), TG_OK);
    assert_string_equal(
        out.p, "{\"max_tokens\":5, \"model\" : \"claude-\\\"3\\\"\",\"messages\":[{\"role\":"
               "\"user\",\"content\":\"x\"}],\"metadata\":{\"user_id\":\"u\"},\"x\":[1,2]}");
    /* a cap too small: TG_ETOOBIG, nothing written */
    tg_buf small;
    tg_buf_init(&small, 10);
    assert_int_equal(tg_anthropic_upstream_body(tg_str_c(body), &req, &off, &small), TG_ETOOBIG);
    assert_int_equal(small.n, 0);
    tg_buf_release(&small);
    tg_buf_release(&out);
    tg_buf_release(&q);
    tg_buf_release(&scratch);
}

static void test_error_body(void **state)
{
    (void)state;
    tg_buf out;
    tg_buf_init(&out, 4096);
    assert_int_equal(
        tg_anthropic_error_body(&out, "invalid_request_error", TG_STR("max_tokens: \"x\"\n\xff")),
        TG_OK);
    assert_string_equal(out.p, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
                               "\"message\":\"max_tokens: \\\"x\\\"\\n\\ufffd\"}}");
    assert_int_equal(tg_json_validate(out.p, out.n, 0, NULL, NULL), TG_OK);
    tg_buf_release(&out);
    static const struct {
        int status;
        const char *type;
    } types[] = {{400, "invalid_request_error"},
                 {409, "invalid_request_error"},
                 {401, "authentication_error"},
                 {402, "billing_error"},
                 {403, "permission_error"},
                 {404, "not_found_error"},
                 {413, "request_too_large"},
                 {429, "rate_limit_error"},
                 {500, "api_error"},
                 {502, "api_error"},
                 {503, "overloaded_error"},
                 {529, "overloaded_error"},
                 {504, "timeout_error"}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        assert_string_equal(tg_anthropic_error_type(types[i].status), types[i].type);
}

static void test_usage(void **state)
{
    (void)state;
    static const char msg[] = "{\"input_tokens\":10,\"cache_read_input_tokens\":30,"
                              "\"cache_creation_input_tokens\":5,\"output_tokens\":7}";
    tg_usage u = {0};
    tg_anthropic_usage(tg_json_root(msg, sizeof msg - 1), &u);
    assert_true(u.present);
    assert_int_equal(u.prompt, 45);
    assert_int_equal(u.cached, 30);
    assert_int_equal(u.cache_write, 5);
    assert_int_equal(u.completion, 7);
    assert_int_equal(u.total, 52);
    /* a stream's message_delta: only output changes, the rest stays */
    static const char delta[] = "{\"output_tokens\":20,\"input_tokens\":null}";
    tg_anthropic_usage(tg_json_root(delta, sizeof delta - 1), &u);
    assert_int_equal(u.prompt, 45);
    assert_int_equal(u.completion, 20);
    assert_int_equal(u.total, 65);
    /* not an object, or nothing in it: nothing */
    tg_usage none = {0};
    tg_anthropic_usage(tg_json_root("null", 4), &none);
    tg_anthropic_usage(tg_json_root("{}", 2), &none);
    assert_false(none.present);
    /* huge counts cap rather than wrap */
    static const char big[] = "{\"input_tokens\":9223372036854775807,\"cache_read_input_tokens\":"
                              "9223372036854775807,\"output_tokens\":9223372036854775807}";
    tg_usage b = {0};
    tg_anthropic_usage(tg_json_root(big, sizeof big - 1), &b);
    assert_int_equal(b.prompt, INT64_MAX);
    assert_int_equal(b.total, INT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_ok),       cmocka_unit_test(test_read_refusals),
        cmocka_unit_test(test_upstream_body), cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
