/* First-available routing; see route.h. */
#include "route/route.h"

tg_route_result tg_route_pick(const tg_config *cfg, const tg_key *key, tg_str model_name,
                              const tg_model **model, const tg_offering **off, tg_errmsg *why)
{
    const tg_model *m = tg_config_model(cfg, model_name);
    if (!m || !tg_key_allows(key, m)) return TG_ROUTE_UNKNOWN_MODEL;
    *model = m;
    for (size_t i = 0; i < m->noffering; i++) {
        if (m->offerings[i]->provider->available) {
            *off = m->offerings[i];
            return TG_ROUTE_OK;
        }
    }
    const tg_provider *p = m->noffering ? m->offerings[0]->provider : NULL;
    if (p && p->api_key_env)
        tg_errmsg_set(why, "no provider is available for model %s: provider %s needs its API key "
                           "in the environment variable %s", m->name, p->name, p->api_key_env);
    else
        tg_errmsg_set(why, "no provider is available for model %s", m->name);
    return TG_ROUTE_UNAVAILABLE;
}
