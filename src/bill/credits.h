/* Credits: what a request consumes of its customer's plan (docs/plans.md).
 *
 * A plan's credit stands for an amount of charge (plan.credit, USD): a
 * request consumes its charge / credit, in nano-credits rounded half-up,
 * unless its action unit is priced in credits on the plan (unit_credits:
 * {report: 10}), when it consumes that many per unit, whatever its
 * charge. A customer without a plan consumes none. Every amount here is an
 * int64 (nano-USD or nano-credits) computed in 128 bits; an overflow is
 * TG_EINVAL, never a wrap. */
#ifndef TG_BILL_CREDITS_H
#define TG_BILL_CREDITS_H

#include "conf/config.h"

/* The nano-credits a request with this unit (empty: none), unit count and
 * charge consumes on p (NULL: 0). */
int tg_credits_of(const tg_plan *p, tg_str unit, int64_t unit_count, tg_nanos charge,
                  tg_ncredits *out);

/* The charge that c nano-credits stand for on p: round-half-up(c x credit
 * / 1e9). */
int tg_credits_value(const tg_plan *p, tg_ncredits c, tg_nanos *out);

#endif
