/* libFuzzer target for the dialect translation (route/adapters/translate.h
 * and anthropic.h's request reader).
 *
 * The same bytes go through every function: read as an OpenAI chat request
 * and translated to Anthropic, read as an Anthropic request and translated
 * to OpenAI (and rewritten for an Anthropic provider), translated as an
 * answer both ways, and as an error body both ways. Checked: nothing reads
 * out of bounds or overflows (ASan, UBSan); every success writes valid
 * JSON; a failure leaves the output buffer as it was; a translated request
 * is one the other dialect's reader accepts, and translating it back
 * succeeds or refuses cleanly; a translated answer translates back; error
 * bodies always translate. */
#include "route/adapters/translate.h"
#include "base/jsonw.h"

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MARK "prefix"
#define CAP (4u << 20)

static tg_offering off;

static void init_offering(void)
{
    static tg_buf quoted;
    static tg_provider p = {.name = "p"};
    if (off.upstream_json) return;
    tg_buf_init(&quoted, 64);
    CHECK(tg_jsonw_str(&quoted, TG_STR("up\"stream")) == TG_OK);
    off = (tg_offering){
        .id = "p/u", .provider = &p, .upstream_model = "up\"stream", .upstream_json = quoted.p};
}

/* A buffer holding MARK, so a failure can be seen to leave it alone. */
static void fresh(tg_buf *b)
{
    tg_buf_init(b, CAP);
    CHECK(tg_buf_add_lit(b, MARK) == TG_OK);
}

/* After a call: valid JSON after MARK on success, MARK alone otherwise. */
static tg_str after(const tg_buf *b, int rc)
{
    tg_str s = tg_str_make(b->p + strlen(MARK), b->n - strlen(MARK));
    CHECK(b->n >= strlen(MARK) && !memcmp(b->p, MARK, strlen(MARK)));
    if (rc) {
        CHECK(rc == TG_EINVAL || rc == TG_ETOOBIG || rc == TG_ENOMEM);
        CHECK(s.n == 0);
    } else {
        CHECK(tg_json_validate(s.p, s.n, TG_JSON_NO_DUP_TOPLEVEL, NULL, NULL) == TG_OK);
    }
    return s;
}

static int anthropic_to_openai(tg_str body, tg_buf *out, bool must_read)
{
    tg_anthropic_req req;
    tg_buf scratch;
    tg_errmsg err;
    tg_translate_param param;
    const char *pp;
    tg_buf_init(&scratch, CAP);
    int rc = tg_anthropic_read_request(body, &scratch, &req, &err, &pp);
    if (must_read) CHECK(rc == TG_OK);
    if (!rc) {
        CHECK(req.input_bytes == req.messages.n + req.system.n);
        tg_buf up;
        fresh(&up);
        after(&up, tg_anthropic_upstream_body(body, &req, &off, &up));
        tg_buf_release(&up);
        rc = tg_translate_req_to_openai(&req, &off, out, &err, &param);
        if (rc == TG_EINVAL)
            CHECK(err.msg[0] &&
                  (!param.name[0] || !strncmp(err.msg, param.name, strlen(param.name))));
    }
    tg_buf_release(&scratch);
    return rc;
}

static int openai_to_anthropic(tg_str body, tg_buf *out, bool must_read)
{
    tg_openai_req req;
    tg_buf scratch;
    tg_errmsg err;
    tg_translate_param param;
    const char *pp;
    tg_buf_init(&scratch, CAP);
    int rc = tg_openai_read_request(body, TG_EP_CHAT, &scratch, &req, &err, &pp);
    if (must_read) CHECK(rc == TG_OK);
    if (!rc) {
        rc = tg_translate_req_to_anthropic(&req, &off, 4096, out, &err, &param);
        if (rc == TG_EINVAL)
            CHECK(err.msg[0] &&
                  (!param.name[0] || !strncmp(err.msg, param.name, strlen(param.name))));
    }
    tg_buf_release(&scratch);
    return rc;
}

/* A request one way, then (when it translated) back the other way. */
static void requests(tg_str in)
{
    tg_buf a, b;
    fresh(&a);
    tg_str s = after(&a, openai_to_anthropic(in, &a, false));
    if (s.n) {
        fresh(&b);
        after(&b, anthropic_to_openai(s, &b, true));
        tg_buf_release(&b);
    }
    tg_buf_release(&a);
    fresh(&a);
    s = after(&a, anthropic_to_openai(in, &a, false));
    if (s.n) {
        fresh(&b);
        after(&b, openai_to_anthropic(s, &b, true));
        tg_buf_release(&b);
    }
    tg_buf_release(&a);
}

/* An answer one way, then back: a translated answer always translates. */
static void answers(tg_str in)
{
    tg_buf a, b;
    tg_usage u;
    tg_errmsg err;
    fresh(&a);
    tg_str s = after(&a, tg_translate_resp_to_anthropic(in, TG_STR("m\xff"), &a, &u, &err));
    if (s.n) {
        fresh(&b);
        CHECK(tg_translate_resp_to_openai(s, TG_STR("m"), 1, &b, &u, &err) == TG_OK);
        after(&b, TG_OK);
        tg_buf_release(&b);
    }
    tg_buf_release(&a);
    fresh(&a);
    s = after(&a, tg_translate_resp_to_openai(in, TG_STR("m"), -1, &a, &u, &err));
    if (s.n) {
        fresh(&b);
        CHECK(tg_translate_resp_to_anthropic(s, TG_STR("m"), &b, &u, &err) == TG_OK);
        after(&b, TG_OK);
        tg_buf_release(&b);
    }
    tg_buf_release(&a);
}

static void errors(tg_str in)
{
    static const int statuses[] = {0, 200, 400, 401, 429, 500, 529, 999};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        tg_buf a;
        fresh(&a);
        CHECK(tg_translate_error_to_anthropic(in, statuses[i], &a) == TG_OK);
        after(&a, TG_OK);
        tg_buf_clear(&a);
        CHECK(tg_buf_add_lit(&a, MARK) == TG_OK);
        CHECK(tg_translate_error_to_openai(in, statuses[i], &a) == TG_OK);
        after(&a, TG_OK);
        tg_buf_release(&a);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_str in = tg_str_make((const char *)data, size);
    init_offering();
    requests(in);
    answers(in);
    errors(in);
    return 0;
}
