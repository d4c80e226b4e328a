/* Credits. See credits.h. */
#include "bill/credits.h"

int tg_credits_of(const tg_plan *p, tg_str unit, int64_t unit_count, tg_nanos charge,
                  tg_ncredits *out)
{
    if (!p) {
        *out = 0;
        return TG_OK;
    }
    const tg_unit_credits *u = unit.n ? tg_plan_unit(p, unit) : NULL;
    if (u) return tg_money_muldiv(u->credits, unit_count, 1, out);
    return tg_money_muldiv(charge, TG_NCREDITS_PER_CREDIT, p->credit, out);
}

int tg_credits_value(const tg_plan *p, tg_ncredits c, tg_nanos *out)
{
    return tg_money_muldiv(c, p->credit, TG_NCREDITS_PER_CREDIT, out);
}
