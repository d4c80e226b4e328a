/* libFuzzer target for the simulated provider's request readers and the
 * answers they lead to (src/sim): the bodies of /v1/chat/completions,
 * /v1/completions, /v1/embeddings and /v1/messages are untrusted bytes.
 *
 * The first byte picks the endpoint (low two bits) and the cache headers'
 * token counts (the rest); the remaining bytes are the body. Checks: the
 * parser accepts, or refuses with a 400 (or a 500 for memory) and a
 * message; an accepted chat, completion or message call yields a body
 * that is valid JSON, stream events whose data lines are valid JSON, as
 * many pieces as completion tokens, one token each, and for a forced tool
 * call arguments that are a JSON object when whole and an "input" that is
 * one always. Embeddings answers are built when small (the float printing
 * would swamp the run otherwise). */
#include "sim/sim_int.h"

#include "base/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static tg_sim_conf conf;
static tg_sim__ctx *sim;

static bool json(tg_str s)
{
    return tg_json_validate(s.p, s.n, 0, NULL, NULL) == TG_OK;
}

static void data_lines_are_json(tg_str s)
{
    size_t i = 0;
    while (i < s.n) {
        const char *nl = memchr(s.p + i, '\n', s.n - i);
        size_t end = nl ? (size_t)(nl - s.p) : s.n;
        tg_str line = tg_str_make(s.p + i, end - i);
        if (tg_str_has_prefix(line, TG_STR("data: ")) && !tg_str_eq(line, TG_STR("data: [DONE]")))
            CHECK(json(tg_str_make(line.p + 6, line.n - 6)));
        i = end + 1;
    }
}

static void check_stream(const tg_sim__call *c, const tg_sim__head *h)
{
    tg_sim__plan p;
    tg_buf b;
    tg_buf_init(&b, TG_SIM__MAX_BODY);
    CHECK(tg_sim__plan_make(&conf, c, &p) == TG_OK);
    CHECK(tg_sim__ev_begin(&b, h, &p, c->prompt_tokens) == TG_OK);
    for (uint32_t i = 0; i < p.tokens; i++) {
        tg_str piece = tg_sim__piece(&p, i == 0);
        CHECK(tg_sim_count_tokens(piece) == 1);
        CHECK(tg_sim__ev_piece(&b, h, &p, piece) == TG_OK);
    }
    if (p.tool) CHECK(p.at == p.args.n);
    CHECK(tg_sim__ev_end(&b, h, &p, c->prompt_tokens, p.tokens) == TG_OK);
    data_lines_are_json(tg_buf_str(&b));
    tg_sim__plan_release(&p);
    tg_buf_release(&b);
}

static void check_answer(const tg_sim__call *c)
{
    tg_sim__head h;
    tg_sim__plan p;
    tg_buf b;
    tg_buf_init(&b, TG_SIM__MAX_BODY);
    CHECK(tg_sim__head_init(sim, &h, c) == TG_OK);
    CHECK(tg_sim__plan_make(&conf, c, &p) == TG_OK);
    if (p.tool) {
        CHECK(json(tg_sim__plan_input(&p)));
        CHECK(p.length || json(tg_buf_str(&p.args)));
        CHECK(p.tokens == tg_sim_count_tokens(tg_buf_str(&p.args)));
    }
    CHECK(tg_sim__body(&b, &h, &p, c->prompt_tokens) == TG_OK);
    CHECK(json(tg_buf_str(&b)));
    tg_sim__plan_release(&p);
    check_stream(c, &h);
    tg_sim__head_release(&h);
    tg_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const tg_sim__kind kinds[4] = {TG_SIM__CHAT, TG_SIM__COMPLETION, TG_SIM__EMBEDDING,
                                          TG_SIM__MESSAGES};
    if (!sim) {
        tg_sim_conf_defaults(&conf);
        sim = calloc(1, sizeof *sim);
    }
    if (!size) return 0;
    tg_sim__kind kind = kinds[data[0] & 3];
    tg_arena a;
    tg_sim__call c;
    tg_sim__err e = {0};
    tg_arena_init(&a);
    int rc = tg_sim__parse(&conf, kind, tg_str_make((const char *)data + 1, size - 1), &a, &c, &e);
    if (rc) {
        CHECK(e.status == 400 || e.status == 500);
        CHECK(e.msg[0]);
    } else {
        CHECK(c.model.n > 0 && c.model.n <= TG_SIM__MAX_MODEL);
        c.cached_want = (data[0] >> 2) & 7;
        c.cache_write_want = data[0] >> 5;
        if (kind != TG_SIM__EMBEDDING) {
            check_answer(&c);
        } else if (c.dims <= 16 && size < 1024) { /* at most 512 items */
            tg_buf b;
            tg_buf_init(&b, TG_SIM__MAX_BODY);
            CHECK(tg_sim__body_embeddings(&b, &conf, &c) == TG_OK);
            CHECK(json(tg_buf_str(&b)));
            tg_buf_release(&b);
        }
    }
    tg_arena_release(&a);
    return 0;
}
