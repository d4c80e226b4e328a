/* The routing section: fallback and retry budgets, breakers, and the
 * rules that choose a model or a strategy for a request (docs/routing.md).
 *
 * Rules name models, plans, customers and keys, so the section is read
 * after all of them. A rule's regex is compiled here, once, with POSIX
 * extended syntax; a pattern that does not compile fails the load with
 * regcomp's own words. The rules array is calloc'd to its final size and
 * its count grows as rules are filled, so a failure half-way frees like a
 * whole section. */
#include "conf/walk.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

const char *tg_strategy_name(tg_strategy s)
{
    switch (s) {
    case TG_STRATEGY_CHEAPEST: return "cheapest";
    case TG_STRATEGY_FASTEST: return "fastest";
    case TG_STRATEGY_WEIGHTED: return "weighted";
    default: return "priority";
    }
}

static int model_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    return tg_conf__model(w, v, dst);
}

/* A plan, customer or key named by id: it must exist, so that a typo in a
 * rule fails the load rather than never matching. */
static int ref_value(tg_yaml_walk *w, const tg_yaml_node *v, char **dst, const char *what,
                     bool found)
{
    char q[48];
    if (!found)
        return tg_yaml_fail(w, v->line, "unknown %s '%s'", what, tg_yaml_quote(q, v->str));
    return tg_conf__dup(w, v->str, dst);
}

static int plan_match(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    int rc = tg_yaml_need_scalar(w, v);
    return rc ? rc : ref_value(w, v, dst, "plan", tg_config_plan(tg_conf__config(w), v->str));
}

static int customer_match(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    int rc = tg_yaml_need_scalar(w, v);
    return rc ? rc
              : ref_value(w, v, dst, "customer", tg_config_customer(tg_conf__config(w), v->str));
}

static int key_match(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_config *c = tg_conf__config(w);
    int rc = tg_yaml_need_scalar(w, v);
    bool found = false;
    for (size_t i = 0; !rc && i < c->nkeys; i++)
        found |= tg_str_eq(tg_str_c(c->keys[i].id), v->str);
    return rc ? rc : ref_value(w, v, dst, "key", found);
}

static int match_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const char *const fields[] = {"feature", "plan", "customer", "key", "model", NULL};
    tg_route_rule *r = dst;
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    if (!rc) rc = tg_yaml_field(w, v, "feature", tg_conf__tag_value, &r->feature);
    if (!rc) rc = tg_yaml_field(w, v, "plan", plan_match, &r->plan);
    if (!rc) rc = tg_yaml_field(w, v, "customer", customer_match, &r->customer);
    if (!rc) rc = tg_yaml_field(w, v, "key", key_match, &r->key);
    if (!rc) rc = tg_yaml_field(w, v, "model", model_value, &r->model);
    return rc;
}

static int regex_check(tg_yaml_walk *w, const tg_yaml_node *v, tg_route_rule *r)
{
    tg_str s;
    int rc = tg_yaml_text(w, v, 1024, &s);
    if (!rc) rc = tg_conf__dup(w, s, &r->regex_src);
    if (rc) return rc;
    if (strlen(r->regex_src) != s.n) return tg_yaml_fail(w, v->line, "must not contain NUL");
    regex_t *re = calloc(1, sizeof *re);
    if (!re) return tg_yaml_nomem(w);
    int e = regcomp(re, r->regex_src, REG_EXTENDED | REG_NOSUB);
    if (e) {
        char why[128];
        regerror(e, re, why, sizeof why);
        free(re);
        return tg_yaml_fail(w, v->line, "is not a valid POSIX extended regex: %s", why);
    }
    r->regex = re;
    return TG_OK;
}

/* escalate_on: [length, invalid_json, {content_matches: REGEX}] */
static int escalate_item(tg_yaml_walk *w, const tg_yaml_node *v, tg_route_rule *r)
{
    static const char *const fields[] = {"content_matches", NULL};
    if (v->kind == TG_YAML_MAP) {
        const tg_yaml_node *re;
        int rc = tg_yaml_check_fields(w, v, fields);
        if (!rc) rc = tg_yaml_require(w, v, "content_matches", &re);
        if (!rc && r->regex) rc = tg_yaml_fail(w, v->line, "only one content_matches per rule");
        if (rc) return rc;
        size_t mark = tg_yaml_push_field(w, "content_matches");
        rc = regex_check(w, re, r);
        tg_yaml_pop(w, mark);
        r->escalate_on |= TG_ESCALATE_REGEX;
        return rc;
    }
    int rc = tg_yaml_need_scalar(w, v);
    if (rc) return rc;
    if (tg_str_eq(v->str, TG_STR("length"))) r->escalate_on |= TG_ESCALATE_LENGTH;
    else if (tg_str_eq(v->str, TG_STR("invalid_json"))) r->escalate_on |= TG_ESCALATE_JSON;
    else
        return tg_yaml_fail(w, v->line,
                            "must be length, invalid_json or {content_matches: REGEX}");
    return TG_OK;
}

static int escalate_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    int rc = tg_yaml_need_seq(w, v);
    size_t i = 0;
    for (const tg_yaml_node *it = v->child; !rc && it; it = it->next, i++) {
        size_t mark = tg_yaml_push_index(w, i);
        rc = escalate_item(w, it, dst);
        tg_yaml_pop(w, mark);
    }
    if (!rc && !((tg_route_rule *)dst)->escalate_on)
        rc = tg_yaml_fail(w, v->line, "must name at least one check");
    return rc;
}

/* What a rule does must make sense on its own: refuse alone; escalation
 * needs a cheap model and a check; something must be done. */
static int rule_actions(tg_yaml_walk *w, const tg_yaml_node *m, tg_route_rule *r)
{
    if (r->refuse && (r->use || r->has_strategy || r->try_first))
        return tg_yaml_fail(w, m->line, "refuse: true cannot be combined with use, strategy or try_first");
    if (r->try_first && !r->escalate_on)
        return tg_yaml_fail(w, m->line,
                            "try_first needs escalate_on (the checks that send a request on to "
                            "the model asked)");
    if (r->escalate_on && !r->try_first)
        return tg_yaml_fail(w, m->line, "escalate_on needs try_first (the model to try first)");
    if (r->try_first && r->try_first == (r->use ? r->use : r->model))
        return tg_yaml_fail(w, m->line, "try_first names the model the request would escalate to");
    if (!r->refuse && !r->use && !r->has_strategy && !r->try_first)
        return tg_yaml_fail(w, m->line, "does nothing: set refuse, use, strategy or try_first");
    return TG_OK;
}

static int rule_item(tg_yaml_walk *w, const tg_yaml_node *m, tg_route_rule *r)
{
    static const char *const fields[] = {"match",     "refuse",      "use", "strategy",
                                         "try_first", "escalate_on", NULL};
    r->line = m->line;
    int rc = tg_yaml_need_map(w, m);
    if (!rc) rc = tg_yaml_check_fields(w, m, fields);
    if (!rc) rc = tg_yaml_field(w, m, "match", match_value, r);
    if (!rc) rc = tg_yaml_field(w, m, "refuse", tg_conf__bool_value, &r->refuse);
    if (!rc) rc = tg_yaml_field(w, m, "use", model_value, &r->use);
    if (!rc) rc = tg_yaml_field(w, m, "strategy", tg_conf__strategy_value, &r->strategy);
    r->has_strategy = tg_yaml_get(m, "strategy") != NULL;
    if (!rc) rc = tg_yaml_field(w, m, "try_first", model_value, &r->try_first);
    if (!rc) rc = tg_yaml_field(w, m, "escalate_on", escalate_value, r);
    if (!rc) rc = rule_actions(w, m, r);
    return rc;
}

static int rules_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    tg_routing_conf *rt = dst;
    int rc = tg_yaml_need_seq(w, v);
    if (rc || !v->n) return rc;
    if (!(rt->rules = calloc(v->n, sizeof *rt->rules))) return tg_yaml_nomem(w);
    size_t i = 0;
    for (const tg_yaml_node *it = v->child; !rc && it; it = it->next, i++) {
        size_t mark = tg_yaml_push_index(w, i);
        rt->nrules++;
        rc = rule_item(w, it, &rt->rules[i]);
        tg_yaml_pop(w, mark);
    }
    return rc;
}

static int breaker_value(tg_yaml_walk *w, const tg_yaml_node *v, void *dst)
{
    static const char *const fields[] = {"failures", "cooldown_ms", NULL};
    static const tg_yaml_u32 u32[] = {
        TG_CONF_U32(tg_routing_conf, "failures", breaker_failures, 1, 1000),
        TG_CONF_U32(tg_routing_conf, "cooldown_ms", breaker_cooldown_ms, 1, 86400000),
    };
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    if (!rc) rc = tg_yaml_u32_fields(w, v, dst, u32, 2);
    return rc;
}

int tg_conf__routing(tg_yaml_walk *w, const tg_yaml_node *v)
{
    static const char *const fields[] = {"attempts", "deadline_ms", "backoff_ms", "max_backoff_ms",
                                         "breaker",  "rules",       NULL};
    static const tg_yaml_u32 u32[] = {
        TG_CONF_U32(tg_routing_conf, "attempts", attempts, 1, 10),
        TG_CONF_U32(tg_routing_conf, "deadline_ms", deadline_ms, 1, 86400000),
        TG_CONF_U32(tg_routing_conf, "backoff_ms", backoff_ms, 0, 60000),
        TG_CONF_U32(tg_routing_conf, "max_backoff_ms", max_backoff_ms, 0, 600000),
    };
    tg_routing_conf *rt = &tg_conf__config(w)->routing;
    *rt = (tg_routing_conf){.attempts = 3, .deadline_ms = 30000, .backoff_ms = 50,
                            .max_backoff_ms = 2000, .breaker_failures = 5,
                            .breaker_cooldown_ms = 30000};
    if (!v || tg_yaml_is_null(v)) return TG_OK;
    size_t mark = tg_yaml_push_field(w, "routing");
    int rc = tg_yaml_need_map(w, v);
    if (!rc) rc = tg_yaml_check_fields(w, v, fields);
    if (!rc) rc = tg_yaml_u32_fields(w, v, rt, u32, sizeof u32 / sizeof *u32);
    if (!rc) rc = tg_yaml_field(w, v, "breaker", breaker_value, rt);
    if (!rc) rc = tg_yaml_field(w, v, "rules", rules_value, rt);
    tg_yaml_pop(w, mark);
    return rc;
}

void tg_conf__routing_free(tg_routing_conf *rt)
{
    for (size_t i = 0; i < rt->nrules; i++) {
        tg_route_rule *r = &rt->rules[i];
        free(r->feature);
        free(r->plan);
        free(r->customer);
        free(r->key);
        free(r->regex_src);
        if (r->regex) regfree(r->regex);
        free(r->regex);
    }
    free(rt->rules);
    rt->rules = NULL;
    rt->nrules = 0;
}
