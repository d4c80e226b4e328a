/* `tollgate usage`: records one by one, as a table, CSV or JSON. See
 * records.h. Each record is rendered into a small buffer and written out
 * before the next is read, so an export of millions stays flat in memory. */
#include "report/records.h"

#include "base/jsonw.h"
#include "store/records.h"

#include <string.h>
#include <time.h>

int tg_records_query_parse(tg_records_query *q, const char *period, const char *app,
                           const char *customer, const char *rid, const char *run, size_t limit,
                           tg_errmsg *err)
{
    memset(q, 0, sizeof *q);
    q->to_ms = ((int64_t)1 << 48) - 1;
    if (period && *period) {
        tg_report_query rq;
        int rc = tg_report_query_parse(&rq, period, "customer", NULL, NULL, 0, err);
        if (rc) return rc;
        q->from_ms = rq.from_ms;
        q->to_ms = rq.to_ms;
    }
    q->f = (tg_record_filter){app, customer, rid, run};
    q->limit = limit;
    return TG_OK;
}

/* Every column, in order: name, and how to write it. */
enum { C_STR, C_INT, C_MONEY, C_BOOL };
typedef struct {
    const char *name;
    int kind;
    size_t off;  /* into tg_usage_rec */
    size_t size; /* of the field: an integer is 8 bytes or 4 (attempts) */
} column;

#define S(n, f) {n, C_STR, offsetof(tg_usage_rec, f), 0}
#define I(n, f) {n, C_INT, offsetof(tg_usage_rec, f), sizeof ((tg_usage_rec *)0)->f}
#define M(n, f) {n, C_MONEY, offsetof(tg_usage_rec, f), sizeof ((tg_usage_rec *)0)->f}
#define B(n, f) {n, C_BOOL, offsetof(tg_usage_rec, f), 0}
static const column cols[] = {
    S("rid", rid), S("key", key_id), S("app", tags.app), S("customer", tags.customer),
    S("plan", tags.plan), S("workspace", tags.workspace), S("user", tags.user),
    S("feature", tags.feature), S("workflow", tags.workflow), S("run", tags.run),
    S("unit", tags.unit), I("unit_count", tags.unit_count), S("model", model),
    S("offering", offering), S("provider", provider), B("stream", stream),
    I("prompt_tokens", tokens.prompt), I("cached_tokens", tokens.cached),
    I("cache_write_tokens", tokens.cache_write), I("completion_tokens", tokens.completion),
    I("reasoning_tokens", tokens.reasoning), B("estimated", estimated), M("cost", cost),
    M("charge", charge), M("margin", margin), M("fee", fee), M("credits", credits), S("rule", rule),
    I("start_ms", t_start_ms), I("latency_us", latency_us), I("ttft_us", ttft_us),
    /* routing (issue 5), last so that CSV readers counting columns find
     * the older ones where they were */
    I("attempts", attempts), B("attempt", attempt), M("asked_cost", asked_cost),
};

static int64_t int_at(const tg_usage_rec *r, const column *c)
{
    const char *at = (const char *)r + c->off;
    if (c->size == sizeof(int32_t)) {
        int32_t v;
        memcpy(&v, at, sizeof v);
        return v;
    }
    int64_t v;
    memcpy(&v, at, sizeof v);
    return v;
}

/* The fields that are not plain columns: id, enums and status. */
static void extras(const tg_usage_rec *r, char id[2 * TG_RECORD_ID_LEN + 1], const char **route,
                   const char **endpoint, const char **outcome)
{
    tg_record_id_hex(r->id, id);
    *route = tg_route_kind_name((tg_route_kind)r->route);
    *endpoint = tg_ep_kind_name((tg_ep_kind)r->endpoint);
    *outcome = tg_outcome_name((tg_outcome)r->outcome);
}

static int json_record(tg_buf *b, const tg_usage_rec *r, bool first)
{
    char id[2 * TG_RECORD_ID_LEN + 1], money[TG_MONEY_STRLEN];
    const char *route, *endpoint, *outcome;
    extras(r, id, &route, &endpoint, &outcome);
    int rc = tg_buf_printf(b, "%s{\"id\":\"%s\",\"endpoint\":\"%s\",\"route\":\"%s\",\"status\":%d,"
                              "\"outcome\":\"%s\"", first ? "" : ",\n", id, endpoint, route,
                           (int)r->status, outcome);
    for (size_t i = 0; !rc && i < sizeof cols / sizeof *cols; i++) {
        const column *c = &cols[i];
        const void *at = (const char *)r + c->off;
        rc = tg_buf_printf(b, ",\"%s\":", c->name);
        if (rc) break;
        switch (c->kind) {
        case C_STR: rc = tg_jsonw_str(b, tg_str_c(at)); break;
        case C_INT: rc = tg_buf_add_i64(b, int_at(r, c)); break;
        case C_BOOL: rc = tg_buf_add_str(b, *(const bool *)at ? TG_STR("true") : TG_STR("false")); break;
        default:
            tg_money_fmt(money, int_at(r, c));
            rc = tg_buf_printf(b, "\"%s\",\"%s_nanos\":%lld", money, c->name,
                               (long long)int_at(r, c));
        }
    }
    return rc ? rc : tg_buf_add_char(b, '}');
}

static int csv_record(tg_buf *b, const tg_usage_rec *r)
{
    char id[2 * TG_RECORD_ID_LEN + 1], cell[TG_MONEY_STRLEN + 8];
    const char *route, *endpoint, *outcome;
    extras(r, id, &route, &endpoint, &outcome);
    int rc = tg_buf_printf(b, "%s,%s,%s,%d,%s", id, endpoint, route, (int)r->status, outcome);
    for (size_t i = 0; !rc && i < sizeof cols / sizeof *cols; i++) {
        const column *c = &cols[i];
        const void *at = (const char *)r + c->off;
        rc = tg_buf_add_char(b, ',');
        if (rc) break;
        if (c->kind == C_STR) {
            rc = tg_report_csv_field(b, at);
        } else if (c->kind == C_BOOL) {
            rc = tg_buf_add_str(b, *(const bool *)at ? TG_STR("true") : TG_STR("false"));
        } else if (c->kind == C_INT) {
            rc = tg_buf_add_i64(b, int_at(r, c));
        } else {
            tg_money_fmt(cell, int_at(r, c));
            rc = tg_buf_add_str(b, tg_str_c(cell));
        }
    }
    return rc ? rc : tg_buf_add_char(b, '\n');
}

static int csv_header(tg_buf *b)
{
    int rc = tg_buf_add_lit(b, "id,endpoint,route,status,outcome");
    for (size_t i = 0; !rc && i < sizeof cols / sizeof *cols; i++)
        rc = tg_buf_printf(b, ",%s", cols[i].name);
    return rc ? rc : tg_buf_add_char(b, '\n');
}

/* The table's columns: the header and each record's line share them. */
#define TABLE_LINE                                                                                \
    "%-20s  %-28.28s  %-16.16s  %-14.14s  %-16.16s  %-9s  %3s  %-11s  %3s  %9s  %9s  %14s  %14s"   \
    "  %14s%s%s\n"

static int table_record(tg_buf *b, const tg_usage_rec *r)
{
    char when[32], cost[TG_MONEY_STRLEN], charge[TG_MONEY_STRLEN], asked[TG_MONEY_STRLEN];
    char status[16], attempts[16], prompt[24], output[24];
    time_t t = (time_t)(r->t_start_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    tg_money_fmt(cost, r->cost);
    tg_money_fmt(charge, r->charge);
    tg_money_fmt(asked, r->asked_cost);
    snprintf(status, sizeof status, "%d", (int)r->status);
    snprintf(attempts, sizeof attempts, "%d", (int)r->attempts);
    snprintf(prompt, sizeof prompt, "%lld", (long long)r->tokens.prompt);
    snprintf(output, sizeof output, "%lld", (long long)r->tokens.completion);
    return tg_buf_printf(b, TABLE_LINE, when, r->rid, r->tags.customer, r->tags.feature, r->model,
                         tg_route_kind_name((tg_route_kind)r->route), status,
                         tg_outcome_name((tg_outcome)r->outcome), attempts, prompt, output, cost,
                         charge, asked, r->attempt ? "  (attempt)" : "",
                         r->estimated ? "  (estimated)" : "");
}

typedef struct {
    FILE *out;
    tg_report_format f;
    tg_buf b;
    size_t n;
} printer;

static int print_one(void *ud, const tg_usage_rec *r)
{
    printer *p = ud;
    tg_buf_clear(&p->b);
    int rc = p->f == TG_REPORT_JSON ? json_record(&p->b, r, p->n == 0)
             : p->f == TG_REPORT_CSV ? csv_record(&p->b, r)
                                     : table_record(&p->b, r);
    p->n++;
    if (!rc && fwrite(p->b.p, 1, p->b.n, p->out) != p->b.n) rc = TG_EIO;
    return rc;
}

int tg_records_print(tg_store *s, const tg_records_query *q, tg_report_format f, FILE *out,
                     tg_errmsg *err)
{
    printer p = {.out = out, .f = f};
    tg_buf_init(&p.b, 1 << 16);
    int rc = TG_OK;
    if (f == TG_REPORT_JSON) rc = fputs("{\"records\":[\n", out) < 0 ? TG_EIO : TG_OK;
    else if (f == TG_REPORT_CSV) rc = csv_header(&p.b) || fwrite(p.b.p, 1, p.b.n, out) != p.b.n ? TG_EIO : TG_OK;
    else
        rc = fprintf(out, TABLE_LINE, "start (UTC)", "request", "customer", "feature", "model",
                     "route", "st", "outcome", "att", "prompt", "output", "cost USD", "charge USD",
                     "asked USD", "", "") < 0 ? TG_EIO : TG_OK;
    if (!rc) rc = tg_store_each_record(s, q->from_ms, q->to_ms, &q->f, q->limit, print_one, &p, err);
    if (rc == TG_EIO && !err->msg[0]) tg_errmsg_set(err, "writing the output failed");
    if (!rc && f == TG_REPORT_JSON && fputs("\n]}\n", out) < 0) rc = TG_EIO;
    if (!rc && fflush(out)) rc = TG_EIO;
    tg_buf_release(&p.b);
    return rc;
}
