/* Agent runs (src/gate/runs.c): the step and cost limits refuse the next
 * step and count nothing for it; runs of the same id under two customers
 * are two runs; steps loaded from the store count; idle runs are
 * forgotten after a day; a plan's limits override its app's field by
 * field; and 8 threads admitting into one run let exactly max_steps
 * through. */
#include "gate/runs.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>

#define USD TG_NANOS_PER_USD

static void test_limits(void **state)
{
    (void)state;
    tg_runs *r = tg_runs_new();
    tg_run_limits lim = {.max_steps = 3, .max_cost = USD};
    tg_run_verdict v;
    tg_run_state st;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tg_runs_admit(r, TG_STR("app"), TG_STR("c1"), TG_STR("run-1"), &lim, 1000, &v, &st), TG_OK);
        assert_int_equal(v, TG_RUN_OK);
        assert_int_equal(st.steps, (uint64_t)i + 1);
    }
    assert_int_equal(tg_runs_admit(r, TG_STR("app"), TG_STR("c1"), TG_STR("run-1"), &lim, 1000, &v, &st), TG_OK);
    assert_int_equal(v, TG_RUN_STEPS);
    assert_int_equal(st.steps, 3); /* the refusal counted nothing */
    /* the same id under another customer is another run */
    assert_int_equal(tg_runs_admit(r, TG_STR("app"), TG_STR("c2"), TG_STR("run-1"), &lim, 1000, &v, &st), TG_OK);
    assert_int_equal(v, TG_RUN_OK);
    /* cost: the step that reaches the limit was let through; the next is not */
    tg_runs_cost(r, TG_STR("app"), TG_STR("c2"), TG_STR("run-1"), USD - 1);
    assert_int_equal(tg_runs_admit(r, TG_STR("app"), TG_STR("c2"), TG_STR("run-1"), &lim, 1000, &v, &st), TG_OK);
    assert_int_equal(v, TG_RUN_OK);
    tg_runs_cost(r, TG_STR("app"), TG_STR("c2"), TG_STR("run-1"), 1);
    assert_int_equal(tg_runs_admit(r, TG_STR("app"), TG_STR("c2"), TG_STR("run-1"), &lim, 1000, &v, &st), TG_OK);
    assert_int_equal(v, TG_RUN_COST);
    assert_int_equal(st.cost, USD);
    assert_true(tg_runs_get(r, TG_STR("app"), TG_STR("c2"), TG_STR("run-1"), &st));
    assert_int_equal(st.steps, 2);
    assert_false(tg_runs_get(r, TG_STR("app"), TG_STR("c3"), TG_STR("run-1"), &st));
    /* no limits: every step */
    tg_run_limits none = {0};
    for (int i = 0; i < 10; i++) {
        tg_runs_admit(r, TG_STR("app"), TG_STR("c1"), TG_STR("run-1"), &none, 1000, &v, &st);
        assert_int_equal(v, TG_RUN_OK);
    }
    tg_runs_free(r);
}

static void test_note_and_idle(void **state)
{
    (void)state;
    tg_runs *r = tg_runs_new();
    tg_run_limits lim = {.max_steps = 5};
    assert_int_equal(tg_runs_note(r, TG_STR("a"), TG_STR("c"), TG_STR("r"), 300, 5000), TG_OK);
    assert_int_equal(tg_runs_note(r, TG_STR("a"), TG_STR("c"), TG_STR("r"), 200, 6000), TG_OK);
    tg_run_state st;
    assert_true(tg_runs_get(r, TG_STR("a"), TG_STR("c"), TG_STR("r"), &st));
    assert_int_equal(st.steps, 2);
    assert_int_equal(st.cost, 500);
    /* runs idle a day are forgotten (a shard sweeps every 1,024 new runs:
     * 20,000 over 16 shards passes that in each) */
    int64_t later = 6000 + TG_RUN_IDLE_MS + 1;
    tg_run_verdict v;
    for (int i = 0; i < 20000; i++) {
        char id[32];
        snprintf(id, sizeof id, "other-%d", i);
        assert_int_equal(tg_runs_admit(r, TG_STR("a"), TG_STR("c"), tg_str_c(id), &lim, later, &v, &st), TG_OK);
    }
    assert_false(tg_runs_get(r, TG_STR("a"), TG_STR("c"), TG_STR("r"), &st));
    assert_true(tg_runs_get(r, TG_STR("a"), TG_STR("c"), TG_STR("other-19999"), &st));
    /* a key too long to be a run's is refused, not truncated */
    char big[400];
    memset(big, 'x', sizeof big);
    assert_int_equal(tg_runs_admit(r, TG_STR("a"), TG_STR("c"), tg_str_make(big, sizeof big), &lim, later, &v, &st),
                     TG_EINVAL);
    tg_runs_free(r);
}

static void test_limits_merge(void **state)
{
    (void)state;
    tg_app a = {.id = "app", .runs = {.max_steps = 50, .max_cost = 2 * USD}};
    tg_plan p = {.id = "p", .runs = {.max_cost = USD}, .has_run_cost = true};
    tg_run_limits l = tg_runs_limits(&p, &a);
    assert_int_equal(l.max_steps, 50);
    assert_int_equal(l.max_cost, USD);
    p.has_run_steps = true; /* max_steps: 0 set on the plan: none, whatever the app says */
    l = tg_runs_limits(&p, &a);
    assert_int_equal(l.max_steps, 0);
    l = tg_runs_limits(NULL, &a);
    assert_int_equal(l.max_steps, 50);
    l = tg_runs_limits(NULL, NULL);
    assert_int_equal(l.max_steps, 0);
    assert_int_equal(l.max_cost, 0);
}

typedef struct {
    tg_runs *r;
    int admitted;
} worker;

static void *hammer(void *arg)
{
    worker *w = arg;
    tg_run_limits lim = {.max_steps = 1000};
    for (int i = 0; i < 5000; i++) {
        tg_run_verdict v;
        tg_run_state st;
        tg_runs_admit(w->r, TG_STR("app"), TG_STR("c"), TG_STR("shared"), &lim, 1, &v, &st);
        if (v == TG_RUN_OK) w->admitted++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    tg_runs *r = tg_runs_new();
    worker w[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){r, 0};
        pthread_create(&t[i], NULL, hammer, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += w[i].admitted;
    }
    assert_int_equal(total, 1000);
    tg_runs_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits), cmocka_unit_test(test_note_and_idle),
        cmocka_unit_test(test_limits_merge), cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
