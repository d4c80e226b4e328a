/* What the sim billed: the counters of /sim/stats and the request list of
 * /sim/requests, the ground truth the gateway's metering tests compare
 * their ledger with.
 *
 * prompt_tokens keeps OpenAI's convention whatever the dialect: every
 * prompt token, those read from and written to a cache included (an
 * Anthropic answer reports input_tokens apart from them), so a ledger
 * that normalises both dialects the same way compares directly.
 *
 * Everything here is guarded by one mutex held for a few increments or
 * while formatting; the state lives until the server's worker stops. */
#include "sim/sim_int.h"

#include "base/jsonw.h"

#include <stdlib.h>

static tg_sim__model_stat *model_stat(tg_sim__ctx *sim, tg_str model)
{
    for (size_t i = 0; i < sim->nmodels; i++)
        if (tg_str_eq(tg_str_c(sim->models[i].name), model)) return &sim->models[i];
    if (sim->nmodels == TG_SIM__MAX_STAT_MODELS) return &sim->other;
    if (!sim->models) {
        sim->models = calloc(TG_SIM__MAX_STAT_MODELS, sizeof *sim->models);
        if (!sim->models) return &sim->other;
    }
    char *name = tg_str_dup(model);
    if (!name) return &sim->other;
    tg_sim__model_stat *m = &sim->models[sim->nmodels++];
    *m = (tg_sim__model_stat){.name = name};
    return m;
}

static void copy_trunc(char *dst, size_t cap, tg_str s)
{
    size_t n = s.n < cap ? s.n : cap - 1;
    if (n) memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static void served_add(tg_sim__ctx *sim, const tg_sim__rec *rec)
{
    if (sim->nserved == sim->capserved) {
        size_t cap = sim->capserved ? sim->capserved * 2 : 1024;
        tg_sim__served *n =
            cap <= TG_SIM__MAX_SERVED ? realloc(sim->served, cap * sizeof *n) : NULL;
        if (!n) {
            sim->served_truncated = true;
            return;
        }
        sim->served = n;
        sim->capserved = cap;
    }
    tg_sim__served *e = &sim->served[sim->nserved++];
    copy_trunc(e->rid, sizeof e->rid, rec->rid);
    copy_trunc(e->model, sizeof e->model, rec->model);
    e->stream = rec->stream;
    e->fault = (uint8_t)rec->fault;
    e->dialect = (uint8_t)rec->dialect;
    e->prompt = rec->prompt;
    e->completion = rec->completion;
    e->cached = rec->cached;
    e->cache_write = rec->cache_write;
}

void tg_sim__record(tg_sim__ctx *sim, const tg_sim__rec *in)
{
    tg_sim__rec rec = *in;
    /* faults other than cut bill nothing, whatever the caller passed */
    if (rec.fault != TG_SIM_FAULT_NONE && rec.fault != TG_SIM_FAULT_CUT)
        rec.prompt = rec.completion = rec.cached = rec.cache_write = 0;
    pthread_mutex_lock(&sim->mu);
    sim->requests++;
    sim->rejected += rec.rejected;
    if ((unsigned)rec.fault < TG_SIM__FAULT_KINDS) sim->faults[rec.fault]++;
    if (rec.model.n) {
        tg_sim__model_stat *m = model_stat(sim, rec.model);
        m->requests++;
        m->streams += rec.stream;
        m->prompt_tokens += rec.prompt;
        m->completion_tokens += rec.completion;
        m->cached_tokens += rec.cached;
        m->cache_write_tokens += rec.cache_write;
        served_add(sim, &rec);
    }
    pthread_mutex_unlock(&sim->mu);
}

void tg_sim__record_refused(tg_sim__ctx *sim, bool rejected)
{
    tg_sim__record(sim, &(tg_sim__rec){.rejected = rejected});
}

void tg_sim__stats_reset(tg_sim__ctx *sim)
{
    pthread_mutex_lock(&sim->mu);
    for (size_t i = 0; i < sim->nmodels; i++)
        free(sim->models[i].name);
    sim->nmodels = 0;
    sim->other = (tg_sim__model_stat){0};
    sim->requests = sim->rejected = 0;
    sim->nserved = 0;
    sim->served_truncated = false;
    memset(sim->faults, 0, sizeof sim->faults);
    atomic_store(&sim->draws, 0); /* a reset run draws the same faults again */
    pthread_mutex_unlock(&sim->mu);
}

void tg_sim__stats_free(tg_sim__ctx *sim)
{
    for (size_t i = 0; i < sim->nmodels; i++)
        free(sim->models[i].name);
    free(sim->models);
    free(sim->served);
}

static int stat_json(tg_buf *b, const char *name, const tg_sim__model_stat *m, bool comma)
{
    int rc = comma ? tg_buf_add_char(b, ',') : TG_OK;
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(name));
    if (!rc)
        rc = tg_buf_printf(
            b,
            ":{\"requests\":%llu,\"streams\":%llu,\"prompt_tokens\":%llu,"
            "\"completion_tokens\":%llu,\"cached_tokens\":%llu,"
            "\"cache_write_tokens\":%llu}",
            (unsigned long long)m->requests, (unsigned long long)m->streams,
            (unsigned long long)m->prompt_tokens, (unsigned long long)m->completion_tokens,
            (unsigned long long)m->cached_tokens, (unsigned long long)m->cache_write_tokens);
    return rc;
}

/* Copied under the lock into b; the lock is held only while formatting
 * counters, which is short next to a test's polling. */
int tg_sim__stats_json(tg_sim__ctx *sim, tg_buf *b)
{
    pthread_mutex_lock(&sim->mu);
    int rc = tg_buf_printf(b, "{\"requests\":%llu,\"rejected\":%llu,\"faults\":{",
                           (unsigned long long)sim->requests, (unsigned long long)sim->rejected);
    for (int f = TG_SIM_FAULT_429; !rc && f < TG_SIM__FAULT_KINDS; f++)
        rc = tg_buf_printf(b, "%s\"%s\":%llu", f > TG_SIM_FAULT_429 ? "," : "",
                           tg_sim_fault_name((tg_sim_fault)f), (unsigned long long)sim->faults[f]);
    if (!rc) rc = tg_buf_add_lit(b, "},\"models\":{");
    for (size_t i = 0; !rc && i < sim->nmodels; i++)
        rc = stat_json(b, sim->models[i].name, &sim->models[i], i > 0);
    if (!rc && sim->other.requests) rc = stat_json(b, "(other)", &sim->other, sim->nmodels > 0);
    if (!rc) rc = tg_buf_add_lit(b, "}}");
    pthread_mutex_unlock(&sim->mu);
    return rc;
}

static int served_entry(tg_buf *b, const tg_sim__served *e)
{
    int rc = tg_buf_add_lit(b, "{\"id\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(e->rid));
    if (!rc) rc = tg_buf_add_lit(b, ",\"model\":");
    if (!rc) rc = tg_jsonw_str(b, tg_str_c(e->model));
    if (!rc)
        rc =
            tg_buf_printf(b,
                          ",\"dialect\":\"%s\",\"stream\":%s,\"fault\":\"%s\",\"prompt_tokens\":%u,"
                          "\"completion_tokens\":%u,\"cached_tokens\":%u,"
                          "\"cache_write_tokens\":%u}",
                          e->dialect == TG_SIM__ANTHROPIC ? "anthropic" : "openai",
                          e->stream ? "true" : "false", tg_sim_fault_name((tg_sim_fault)e->fault),
                          e->prompt, e->completion, e->cached, e->cache_write);
    return rc;
}

/* /sim/requests: every request that named a model, in the order the sim
 * billed it, with what it billed. Tests match it against a ledger. */
int tg_sim__served_json(tg_sim__ctx *sim, tg_buf *b)
{
    pthread_mutex_lock(&sim->mu);
    int rc = tg_buf_add_lit(b, "{\"requests\":[");
    for (size_t i = 0; !rc && i < sim->nserved; i++) {
        if (i) rc = tg_buf_add_char(b, ',');
        if (!rc) rc = served_entry(b, &sim->served[i]);
    }
    if (!rc) rc = tg_buf_printf(b, "],\"truncated\":%s}", sim->served_truncated ? "true" : "false");
    pthread_mutex_unlock(&sim->mu);
    return rc;
}
