/* Rate limiters (gate/limits.c): rpm, tpm and concurrency at their exact
 * limits, the sliding window checked by brute force against the log of
 * admissions, honest Retry-After, settle corrections, all-or-nothing
 * admission into two limiters, threads on one limiter and on the
 * registry. Time is passed in, so every case is deterministic. */
#include "base/rng.h"
#include "gate/limits.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* A unix time in ms, a quarter second into its second: every test runs at
 * an offset inside the second, where counting by whole seconds matters. */
#define T0 (1765000000LL * 1000 + 250)
#define SEC 1000LL

static tg_limiters *reg;

static int setup(void **state)
{
    (void)state;
    reg = tg_limiters_new();
    return reg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tg_limiters_free(reg);
    return 0;
}

static tg_limiter *limiter(tg_limiter_kind kind, const char *id)
{
    tg_limiter *l = NULL;
    assert_int_equal(tg_limiters_get(reg, kind, tg_str_c(id), &l), TG_OK);
    assert_non_null(l);
    return l;
}

static tg_limiter_usage usage(tg_limiter *l, int64_t now)
{
    tg_limiter_usage u;
    tg_limiter_read(l, now, &u);
    return u;
}

/* Refused at now with a verdict whose retry is honest: still refused one
 * second earlier than it says, admitted when it says. Returns the retry;
 * the request ends up admitted (its ticket in *t). */
static uint32_t refused_honestly(tg_limiter *l, const tg_limits *lim, uint64_t tokens, int64_t now,
                                 tg_limit_which which, tg_limiter_ticket *t)
{
    tg_limit_verdict v;
    assert_false(tg_limiter_admit(l, lim, tokens, now, t, &v));
    assert_int_equal(v.limit, which);
    assert_false(v.never);
    uint32_t r = v.retry_after_s;
    assert_true(r >= 1);
    assert_false(tg_limiter_admit(l, lim, tokens, now + (r - 1) * SEC, t, &v));
    assert_int_equal(v.retry_after_s, 1);
    assert_true(tg_limiter_admit(l, lim, tokens, now + r * SEC, t, &v));
    return r;
}

static void test_rpm_exact(void **state)
{
    (void)state;
    tg_limiter *l = limiter(TG_LIMITER_KEY, "rpm-exact");
    tg_limits lim = {.rpm = 5};
    tg_limiter_ticket t[6];
    tg_limit_verdict v;
    for (int i = 0; i < 5; i++)
        assert_true(tg_limiter_admit(l, &lim, 10, T0 + i * 100, &t[i], &v));
    assert_false(tg_limiter_admit(l, &lim, 10, T0 + 700, &t[5], &v));
    assert_int_equal(v.limit, TG_LIMIT_RPM);
    assert_int_equal(v.value, 5);
    assert_int_equal(v.index, 0);
    assert_false(v.never);
    /* All five counted in one bucket, which leaves the window 61 s on. */
    assert_int_equal(v.retry_after_s, 61);
    assert_int_equal(usage(l, T0 + 700).requests, 5);

    /* Honest, also from later in the minute: 0.9 s into the 59th second
     * on, the same bucket leaves 2 s later (at T0's second + 61). */
    int64_t now = T0 + 59 * SEC + 650;
    assert_int_equal(refused_honestly(l, &lim, 10, now, TG_LIMIT_RPM, &t[5]), 2);
    assert_int_equal(usage(l, now + 2 * SEC).requests, 1);
    /* Settling leaves the count of requests as it is. */
    for (int i = 0; i < 6; i++)
        tg_limiter_settle(&t[i], 10);
    assert_int_equal(usage(l, now + 2 * SEC).requests, 1);
    assert_int_equal(usage(l, now + 2 * SEC).in_flight, 0);
}

/* Admissions tried at random instants over 90 s, checked against the log:
 * never more than rpm within any 60 seconds (ends included); a refusal
 * only when the 61 buckets hold rpm requests; every retry exactly the
 * first second at which a request fits again. */
static void sliding_window(uint64_t seed, uint32_t rpm, int64_t step_ms)
{
    tg_rng rng = {seed};
    char id[32];
    snprintf(id, sizeof id, "window-%llu", (unsigned long long)seed);
    tg_limiter *l = limiter(TG_LIMITER_KEY, id);
    tg_limits lim = {.rpm = rpm};
    enum { MAX = 4096 };
    static int64_t log[MAX];
    size_t n = 0, refusals = 0;
    int64_t end = T0 + 90 * SEC, now = T0;
    for (; now < end; now += (int64_t)tg_rng_below(&rng, (uint64_t)step_ms)) {
        tg_limiter_ticket t;
        tg_limit_verdict v;
        if (tg_limiter_admit(l, &lim, 1, now, &t, &v)) {
            assert_true(n < MAX);
            log[n++] = now;
            tg_limiter_settle(&t, 1);
            continue;
        }
        refusals++;
        assert_int_equal(v.limit, TG_LIMIT_RPM);
        /* Counted in the window of second s: admitted at s-60..s. */
        int64_t s = now / SEC;
        size_t inwin = 0;
        for (size_t i = 0; i < n; i++)
            inwin += log[i] / SEC >= s - 60;
        assert_int_equal(inwin, rpm);
        /* At second s + retry one more fits, one second earlier it did not. */
        size_t at = 0, before = 0;
        for (size_t i = 0; i < n; i++) {
            at += log[i] / SEC >= s + v.retry_after_s - 60;
            before += log[i] / SEC >= s + v.retry_after_s - 61;
        }
        assert_true(at < rpm);
        assert_int_equal(before, rpm);
    }
    for (size_t i = 0; i < n; i++) {
        size_t span = 0;
        for (size_t j = i; j < n && log[j] <= log[i] + 60 * SEC; j++)
            span++;
        assert_true(span <= rpm);
    }
    /* Capacity came back as buckets left: more than one window's worth was
     * admitted over 90 s, and a full window's worth fits 61 s on. */
    assert_true(refusals > 0);
    assert_true(n > rpm);
    assert_true(log[n - 1] >= T0 + 60 * SEC);
    now = log[n - 1] + 61 * SEC;
    assert_int_equal(usage(l, now).requests, 0);
    for (uint32_t i = 0; i < rpm; i++) {
        tg_limiter_ticket t;
        tg_limit_verdict v;
        assert_true(tg_limiter_admit(l, &lim, 1, now, &t, &v));
    }
}

static void test_sliding_window(void **state)
{
    (void)state;
    sliding_window(1, 7, 400);
    sliding_window(2, 20, 150);
    sliding_window(3, 1, 2000);
    sliding_window(4, 50, 40);
}

static void test_tpm(void **state)
{
    (void)state;
    tg_limiter *l = limiter(TG_LIMITER_KEY, "tpm");
    tg_limits lim = {.tpm = 1000};
    tg_limiter_ticket a, b, c, d;
    tg_limit_verdict v;
    assert_true(tg_limiter_admit(l, &lim, 400, T0, &a, &v));
    assert_true(tg_limiter_admit(l, &lim, 400, T0 + 10 * SEC, &b, &v));
    assert_false(tg_limiter_admit(l, &lim, 400, T0 + 20 * SEC, &c, &v));
    assert_int_equal(v.limit, TG_LIMIT_TPM);
    assert_int_equal(v.value, 1000);
    /* a's bucket leaves at T0 + 61 s. */
    assert_int_equal(v.retry_after_s, 41);

    /* Actual lower than the estimate frees tokens: 100 + 400, room for
     * 400 more. */
    tg_limiter_settle(&a, 100);
    assert_null(a.limiter);
    assert_int_equal(usage(l, T0 + 20 * SEC).tokens, 500);
    assert_true(tg_limiter_admit(l, &lim, 400, T0 + 20 * SEC, &c, &v));
    assert_int_equal(usage(l, T0 + 20 * SEC).tokens, 900);
    /* Higher consumes more: b used 500, so 1000 are counted. */
    tg_limiter_settle(&b, 500);
    assert_int_equal(usage(l, T0 + 20 * SEC).tokens, 1000);
    /* Settling twice does nothing. */
    tg_limiter_settle(&b, 0);
    assert_int_equal(usage(l, T0 + 20 * SEC).tokens, 1000);
    /* One token must wait for a's 100 to leave (T0 + 61 s), and the retry
     * says so honestly. */
    assert_int_equal(refused_honestly(l, &lim, 1, T0 + 30 * SEC, TG_LIMIT_TPM, &d), 31);
    assert_int_equal(usage(l, T0 + 61 * SEC).tokens, 901);

    /* An estimate over tpm alone can never pass. */
    tg_limiter_ticket e;
    assert_false(tg_limiter_admit(l, &lim, 1001, T0 + 500 * SEC, &e, &v));
    assert_true(v.never);
    assert_int_equal(v.limit, TG_LIMIT_TPM);
    assert_int_equal(v.value, 1000);
    assert_int_equal(v.retry_after_s, 0);
    /* Exactly tpm passes into an empty window. */
    assert_int_equal(usage(l, T0 + 500 * SEC).tokens, 0);
    assert_true(tg_limiter_admit(l, &lim, 1000, T0 + 500 * SEC, &e, &v));

    /* A settle after its bucket left the window corrects nothing (c and d
     * were counted long ago) and still releases the place in flight. */
    assert_int_equal(usage(l, T0 + 500 * SEC).in_flight, 3);
    tg_limiter_settle(&c, 5000);
    tg_limiter_settle(&d, 0);
    tg_limiter_usage u = usage(l, T0 + 500 * SEC);
    assert_int_equal(u.tokens, 1000);
    assert_int_equal(u.in_flight, 1);
    tg_limiter_settle(&e, 0);
    assert_int_equal(usage(l, T0 + 500 * SEC).tokens, 0);
}

static void test_tpm_and_rpm(void **state)
{
    (void)state;
    tg_limiter *l = limiter(TG_LIMITER_KEY, "tpm-rpm");
    tg_limits lim = {.rpm = 3, .tpm = 100};
    tg_limiter_ticket t;
    tg_limit_verdict v;
    /* 90 tokens at T0, then two small requests at T0 + 10 s. */
    assert_true(tg_limiter_admit(l, &lim, 90, T0, &t, &v));
    assert_true(tg_limiter_admit(l, &lim, 1, T0 + 10 * SEC, &t, &v));
    assert_true(tg_limiter_admit(l, &lim, 1, T0 + 10 * SEC, &t, &v));
    /* 50 tokens: both refuse, both fit when T0's bucket leaves (61 s); the
     * rpm is named on a tie. */
    assert_false(tg_limiter_admit(l, &lim, 50, T0 + 20 * SEC, &t, &v));
    assert_int_equal(v.limit, TG_LIMIT_RPM);
    assert_int_equal(v.retry_after_s, 41);
    /* Once T0's bucket left, rpm 2 is full until T0 + 71 s while tpm
     * fits. Admitted then: 50 tokens at T0 + 71 s. */
    tg_limits tight = {.rpm = 2, .tpm = 100};
    assert_int_equal(refused_honestly(l, &tight, 50, T0 + 62 * SEC, TG_LIMIT_RPM, &t), 9);
    tg_limits loose = {.rpm = 10, .tpm = 100};
    assert_true(tg_limiter_admit(l, &loose, 30, T0 + 80 * SEC, &t, &v));
    /* 90 tokens at T0 + 90 s: rpm fits again at T0 + 132 s, when the
     * bucket of 71 s leaves, tpm only at 141 s: the retry waits for the
     * later one, and names it. */
    assert_int_equal(refused_honestly(l, &tight, 90, T0 + 90 * SEC, TG_LIMIT_TPM, &t), 51);
}

static void test_concurrent(void **state)
{
    (void)state;
    tg_limiter *l = limiter(TG_LIMITER_CUSTOMER, "concurrent");
    tg_limits lim = {.concurrent = 2};
    tg_limiter_ticket a, b, c;
    tg_limit_verdict v;
    assert_true(tg_limiter_admit(l, &lim, 1, T0, &a, &v));
    assert_true(tg_limiter_admit(l, &lim, 1, T0, &b, &v));
    assert_false(tg_limiter_admit(l, &lim, 1, T0, &c, &v));
    assert_int_equal(v.limit, TG_LIMIT_CONCURRENT);
    assert_int_equal(v.value, 2);
    assert_int_equal(v.retry_after_s, 1);
    assert_false(v.never);
    /* Time alone does not help. */
    assert_false(tg_limiter_admit(l, &lim, 1, T0 + 3600 * SEC, &c, &v));
    assert_int_equal(v.limit, TG_LIMIT_CONCURRENT);
    tg_limiter_settle(&a, 1);
    assert_true(tg_limiter_admit(l, &lim, 1, T0 + 3600 * SEC, &c, &v));
    assert_false(tg_limiter_admit(l, &lim, 1, T0 + 3600 * SEC, &a, &v));
    /* Cancel releases the place too. */
    tg_limiter_cancel(&b);
    assert_true(tg_limiter_admit(l, &lim, 1, T0 + 3600 * SEC, &b, &v));
    assert_int_equal(usage(l, T0 + 3600 * SEC).in_flight, 2);

    /* Concurrency refusing with rpm: the retry is rpm's, the longer. */
    tg_limits both = {.rpm = 2, .concurrent = 2};
    assert_false(tg_limiter_admit(l, &both, 1, T0 + 3600 * SEC, &a, &v));
    assert_int_equal(v.limit, TG_LIMIT_RPM);
    assert_int_equal(v.retry_after_s, 61);
}

static void test_cancel(void **state)
{
    (void)state;
    tg_limiter *l = limiter(TG_LIMITER_KEY, "cancel");
    tg_limits lim = {.rpm = 1, .tpm = 50};
    tg_limiter_ticket t;
    tg_limit_verdict v;
    assert_true(tg_limiter_admit(l, &lim, 50, T0, &t, &v));
    tg_limiter_cancel(&t);
    tg_limiter_usage u = usage(l, T0);
    assert_int_equal(u.requests, 0);
    assert_int_equal(u.tokens, 0);
    assert_int_equal(u.in_flight, 0);
    assert_true(tg_limiter_admit(l, &lim, 50, T0, &t, &v));
    /* A zeroed ticket settles to nothing. */
    tg_limiter_ticket none = {0};
    tg_limiter_settle(&none, 10);
    tg_limiter_cancel(&none);
    assert_int_equal(usage(l, T0).in_flight, 1);
}

static void test_two_limiters(void **state)
{
    (void)state;
    tg_limiter *key = limiter(TG_LIMITER_KEY, "acme-key");
    tg_limiter *cust = limiter(TG_LIMITER_CUSTOMER, "acme");
    tg_limits klim = {.rpm = 5, .tpm = 1000}, clim = {.rpm = 2};
    const tg_limits *lims[2] = {&klim, &clim};
    tg_limiter *set[2] = {key, cust};
    tg_limiter_ticket t[2];
    tg_limit_verdict v;
    for (int i = 0; i < 2; i++) {
        assert_true(tg_limiter_admit_all(set, lims, 2, 100, T0, t, &v));
        assert_ptr_equal(t[0].limiter, key);
        assert_ptr_equal(t[1].limiter, cust);
    }
    /* The key passes, the customer refuses: the key's state is unchanged. */
    assert_false(tg_limiter_admit_all(set, lims, 2, 100, T0 + 5 * SEC, t, &v));
    assert_int_equal(v.index, 1);
    assert_int_equal(v.limit, TG_LIMIT_RPM);
    assert_int_equal(v.value, 2);
    assert_int_equal(v.retry_after_s, 56);
    tg_limiter_usage u = usage(key, T0 + 5 * SEC);
    assert_int_equal(u.requests, 2);
    assert_int_equal(u.tokens, 200);
    assert_int_equal(u.in_flight, 2);
    /* Three more pass the key alone, then it is full until T0 + 61 s. */
    for (int i = 0; i < 3; i++)
        assert_true(tg_limiter_admit(key, &klim, 100, T0 + 5 * SEC, &t[0], &v));
    assert_false(tg_limiter_admit(key, &klim, 100, T0 + 5 * SEC, &t[0], &v));

    /* Both refuse: the verdict waits for both. The customer gets two more
     * at T0 + 10 s, so under rpm 2 it is full until T0 + 71 s. */
    tg_limits c4 = {.rpm = 4};
    tg_limiter_ticket x, y;
    assert_true(tg_limiter_admit(cust, &c4, 1, T0 + 10 * SEC, &x, &v));
    assert_true(tg_limiter_admit(cust, &c4, 1, T0 + 10 * SEC, &y, &v));
    assert_false(tg_limiter_admit_all(set, lims, 2, 100, T0 + 20 * SEC, t, &v));
    assert_int_equal(v.index, 1);
    assert_int_equal(v.retry_after_s, 51);
    /* Given in the other order, the set locks the same way and answers
     * the same, naming the customer by its new index. */
    tg_limiter *rev[2] = {cust, key};
    const tg_limits *rlims[2] = {&clim, &klim};
    assert_false(tg_limiter_admit_all(rev, rlims, 2, 100, T0 + 20 * SEC, t, &v));
    assert_int_equal(v.index, 0);
    assert_int_equal(v.retry_after_s, 51);
    assert_int_equal(usage(key, T0 + 20 * SEC).requests, 5);
    assert_int_equal(usage(cust, T0 + 20 * SEC).requests, 4);
    /* Both wait until T0 + 61 s: a tie names the lowest index. */
    tg_limiter_cancel(&y);
    assert_false(tg_limiter_admit_all(set, lims, 2, 100, T0 + 20 * SEC, t, &v));
    assert_int_equal(v.index, 0);
    assert_int_equal(v.retry_after_s, 41);
    assert_false(tg_limiter_admit_all(rev, rlims, 2, 100, T0 + 20 * SEC, t, &v));
    assert_int_equal(v.index, 0);
    assert_int_equal(v.retry_after_s, 41);
    /* Honest for the set: at T0 + 60 s still refused, at 61 s admitted. */
    assert_false(tg_limiter_admit_all(set, lims, 2, 100, T0 + 60 * SEC, t, &v));
    assert_true(tg_limiter_admit_all(set, lims, 2, 100, T0 + 61 * SEC, t, &v));
    /* never wins over a wait, whichever limiter says it. */
    tg_limits k1 = {.rpm = 1}, ctiny = {.tpm = 10};
    const tg_limits *nlims[2] = {&k1, &ctiny};
    assert_false(tg_limiter_admit_all(set, nlims, 2, 100, T0 + 61 * SEC, t, &v));
    assert_true(v.never);
    assert_int_equal(v.limit, TG_LIMIT_TPM);
    assert_int_equal(v.index, 1);
}

static void test_unlimited(void **state)
{
    (void)state;
    tg_limiter *l = limiter(TG_LIMITER_KEY, "unlimited");
    tg_limits none = {0};
    tg_limiter_ticket t;
    tg_limit_verdict v;
    for (int i = 0; i < 100000; i++)
        assert_true(tg_limiter_admit(l, &none, 1000000, T0, &t, &v));
    tg_limiter_usage u = usage(l, T0);
    assert_int_equal(u.requests, 100000);
    assert_int_equal(u.tokens, 100000ull * 1000000);
    assert_int_equal(u.in_flight, 100000);
    /* One limit set, the others 0: only it counts. What was admitted while
     * unlimited is counted against it (a reload turning limits on). */
    tg_limits tpm_only = {.tpm = UINT64_MAX};
    assert_true(tg_limiter_admit(l, &tpm_only, 1, T0, &t, &v));
    tg_limits rpm_only = {.rpm = 100002};
    assert_true(tg_limiter_admit(l, &rpm_only, UINT64_MAX / 2, T0, &t, &v));
    assert_false(tg_limiter_admit(l, &rpm_only, 0, T0, &t, &v));
    assert_int_equal(v.limit, TG_LIMIT_RPM);
    /* A huge estimate counts for TG_LIMITER_TOKENS_MAX. */
    assert_int_equal(usage(l, T0).tokens, 100000ull * 1000000 + 1 + TG_LIMITER_TOKENS_MAX);
}

static void test_clock_behind(void **state)
{
    (void)state;
    tg_limiter *l = limiter(TG_LIMITER_KEY, "behind");
    tg_limits lim = {.rpm = 2};
    tg_limiter_ticket a, b;
    tg_limit_verdict v;
    /* A worker whose clock is a little behind: its request counts in the
     * latest second seen, so it leaves no earlier than it should. */
    assert_true(tg_limiter_admit(l, &lim, 1, T0 + 100 * SEC, &a, &v));
    assert_true(tg_limiter_admit(l, &lim, 1, T0 + 99 * SEC + 500, &b, &v));
    assert_int_equal(b.second, a.second);
    assert_false(tg_limiter_admit(l, &lim, 1, T0 + 99 * SEC + 600, &b, &v));
    /* From that worker's second, the bucket leaves 62 s on. */
    assert_int_equal(v.retry_after_s, 62);
    assert_false(tg_limiter_admit(l, &lim, 1, T0 + 160 * SEC, &b, &v));
    assert_true(tg_limiter_admit(l, &lim, 1, T0 + 161 * SEC, &b, &v));
}

/* ---- threads ---- */

#define NTHREADS 8

/* One thread's share: tries admissions into the set at one fixed second,
 * settling each at once. With in_flight, it also counts the threads
 * between admission and settle, and keeps the most it saw. */
typedef struct {
    pthread_barrier_t *go;
    tg_limiter *ls[2];
    const tg_limits *lims[2];
    size_t n;
    int tries;
    int admitted;
    _Atomic int *in_flight;
    int most;
} hammer;

static void *hammer_run(void *arg)
{
    hammer *h = arg;
    pthread_barrier_wait(h->go);
    for (int i = 0; i < h->tries; i++) {
        tg_limiter_ticket t[2];
        tg_limit_verdict v;
        if (!tg_limiter_admit_all(h->ls, h->lims, h->n, 3, T0, t, &v)) continue;
        h->admitted++;
        if (h->in_flight) {
            int now = atomic_fetch_add(h->in_flight, 1) + 1;
            if (now > h->most) h->most = now;
            sched_yield(); /* stay in flight a while, so that others overlap */
            atomic_fetch_sub(h->in_flight, 1);
        }
        for (size_t j = 0; j < h->n; j++)
            tg_limiter_settle(&t[j], 2);
    }
    return NULL;
}

/* Runs NTHREADS hammers at once; returns how many they admitted. */
static int run_hammers(hammer *hs)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NTHREADS);
    pthread_t th[NTHREADS];
    int total = 0;
    for (int i = 0; i < NTHREADS; i++) {
        hs[i].go = &go;
        assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &hs[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        total += hs[i].admitted;
    }
    pthread_barrier_destroy(&go);
    return total;
}

static void test_threads_rpm(void **state)
{
    (void)state;
    tg_limiter *l = limiter(TG_LIMITER_KEY, "hammered");
    tg_limits lim = {.rpm = 100000};
    hammer hs[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        hs[i] = (hammer){.ls = {l}, .lims = {&lim}, .n = 1, .tries = 20000};
    assert_int_equal(run_hammers(hs), 100000);
    tg_limiter_usage u = usage(l, T0);
    assert_int_equal(u.requests, 100000);
    assert_int_equal(u.tokens, 200000);
    assert_int_equal(u.in_flight, 0);
}

static void test_threads_concurrent(void **state)
{
    (void)state;
    tg_limiter *l = limiter(TG_LIMITER_CUSTOMER, "hammered");
    tg_limits lim = {.concurrent = 3};
    _Atomic int in_flight = 0;
    hammer hs[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        hs[i] =
            (hammer){.ls = {l}, .lims = {&lim}, .n = 1, .tries = 20000, .in_flight = &in_flight};
    assert_true(run_hammers(hs) > 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_true(hs[i].most <= 3);
    assert_int_equal(usage(l, T0).in_flight, 0);
}

/* Two limiters shared by every thread, given in both orders: no deadlock,
 * and all or nothing: both count exactly the admitted requests. */
static void test_threads_two_limiters(void **state)
{
    (void)state;
    tg_limiter *a = limiter(TG_LIMITER_KEY, "pair");
    tg_limiter *b = limiter(TG_LIMITER_CUSTOMER, "pair");
    tg_limits alim = {.rpm = 150000}, blim = {.rpm = 100000};
    hammer hs[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        hs[i] = (hammer){.n = 2, .tries = 20000};
        hs[i].ls[i % 2] = a, hs[i].lims[i % 2] = &alim;
        hs[i].ls[1 - i % 2] = b, hs[i].lims[1 - i % 2] = &blim;
    }
    assert_int_equal(run_hammers(hs), 100000);
    assert_int_equal(usage(a, T0).requests, 100000);
    assert_int_equal(usage(b, T0).requests, 100000);
    assert_int_equal(usage(a, T0).in_flight, 0);
}

/* ---- the registry ---- */

static void test_registry(void **state)
{
    (void)state;
    tg_limiter *k = limiter(TG_LIMITER_KEY, "same");
    tg_limiter *c = limiter(TG_LIMITER_CUSTOMER, "same");
    assert_ptr_not_equal(k, c);
    assert_ptr_equal(limiter(TG_LIMITER_KEY, "same"), k);
    /* Ids are sliced, never read past their length. */
    tg_limiter *l = NULL;
    assert_int_equal(tg_limiters_get(reg, TG_LIMITER_KEY, tg_str_make("sameness", 4), &l), TG_OK);
    assert_ptr_equal(l, k);
    assert_int_equal(tg_limiters_get(reg, TG_LIMITER_KEY, TG_STR(""), &l), TG_OK);
    assert_ptr_not_equal(l, k);
    /* Limiters do not share state. */
    tg_limits lim = {.rpm = 1};
    tg_limiter_ticket t;
    tg_limit_verdict v;
    assert_true(tg_limiter_admit(k, &lim, 1, T0, &t, &v));
    assert_true(tg_limiter_admit(c, &lim, 1, T0, &t, &v));
}

#define NIDS 2000

typedef struct {
    pthread_barrier_t *go;
    int start;
    tg_limiter *first;
    tg_limiter *got[NIDS];
} getter;

/* Every thread asks for one new id at once, then for NIDS ids from its
 * own starting point, so that some create while others read and the
 * table grows under readers. */
static void *getter_run(void *arg)
{
    getter *g = arg;
    pthread_barrier_wait(g->go);
    if (tg_limiters_get(reg, TG_LIMITER_CUSTOMER, TG_STR("contended"), &g->first)) return NULL;
    for (int i = 0; i < NIDS; i++) {
        int k = (g->start + i) % NIDS;
        char id[16];
        int n = snprintf(id, sizeof id, "cust-%d", k);
        if (tg_limiters_get(reg, TG_LIMITER_CUSTOMER, tg_str_make(id, (size_t)n), &g->got[k]))
            return NULL;
    }
    return NULL;
}

static void test_registry_threads(void **state)
{
    (void)state;
    static getter gs[NTHREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NTHREADS);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        memset(&gs[i], 0, sizeof gs[i]);
        gs[i].go = &go;
        gs[i].start = i * NIDS / NTHREADS;
        assert_int_equal(pthread_create(&th[i], NULL, getter_run, &gs[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    assert_non_null(gs[0].first);
    for (int i = 0; i < NTHREADS; i++) {
        assert_ptr_equal(gs[i].first, gs[0].first);
        for (int k = 0; k < NIDS; k++) {
            assert_non_null(gs[i].got[k]);
            assert_ptr_equal(gs[i].got[k], gs[0].got[k]);
        }
    }
    /* One limiter per id: distinct ids, distinct limiters (each admits its
     * one request under rpm 1). */
    tg_limits lim = {.rpm = 1};
    for (int k = 0; k < NIDS; k++) {
        tg_limiter_ticket t;
        tg_limit_verdict v;
        assert_true(tg_limiter_admit(gs[0].got[k], &lim, 1, T0, &t, &v));
    }
    /* Asked again from one thread, each id finds its limiter. */
    char id[16];
    for (int k = 0; k < NIDS; k++) {
        int n = snprintf(id, sizeof id, "cust-%d", k);
        tg_limiter *l = NULL;
        assert_int_equal(tg_limiters_get(reg, TG_LIMITER_CUSTOMER, tg_str_make(id, (size_t)n), &l),
                         TG_OK);
        assert_ptr_equal(l, gs[0].got[k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpm_exact),
        cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_tpm),
        cmocka_unit_test(test_tpm_and_rpm),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_two_limiters),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_clock_behind),
        cmocka_unit_test(test_threads_rpm),
        cmocka_unit_test(test_threads_concurrent),
        cmocka_unit_test(test_threads_two_limiters),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_registry_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
