/* Customers created at runtime: an app with create_customers lets its key
 * name a customer the configuration does not list, and that customer is
 * created on its first request (with the app's default plan).
 *
 * The registry maps such a customer's id to its app and plan, for every
 * worker; configured customers never enter it (the configuration is
 * looked up first). It is filled at start from the store (customers the
 * ledger saw in earlier runs, with the plans the admin API gave them)
 * and grows by tg_customers_get_or_add and tg_customers_set_plan.
 * Customer ids are global, like configured ones: a created id belongs to
 * the app that created it. Thread-safe (one mutex; a lookup is a hash probe,
 * taken only for ids the configuration does not know). */
#ifndef TG_GATE_CUSTOMERS_H
#define TG_GATE_CUSTOMERS_H

#include "base/err.h"
#include "base/str.h"
#include "meter/record.h"

typedef struct tg_customers tg_customers;

typedef struct {
    char app[TG_TAG_MAX + 1];
    char plan[TG_TAG_MAX + 1];
} tg_customer_info;

tg_customers *tg_customers_new(void);
void tg_customers_free(tg_customers *c);
/* Adds id (or keeps what is there). TG_ENOMEM. */
int tg_customers_put(tg_customers *c, tg_str id, tg_str app, tg_str plan);
/* Copies the entry of id into *out; false when unknown. */
bool tg_customers_get(tg_customers *c, tg_str id, tg_customer_info *out);
/* Looks id up; if unknown, adds it for app/plan. *out gets the entry that
 * is there after the call (it may belong to another app, when two apps
 * race for one id). TG_ENOMEM. */
int tg_customers_get_or_add(tg_customers *c, tg_str id, tg_str app, tg_str plan, tg_customer_info *out);
/* Puts id on plan, adding it for app if unknown (a known id keeps its
 * app: the caller checks it is app). TG_ENOMEM. */
int tg_customers_set_plan(tg_customers *c, tg_str id, tg_str app, tg_str plan);
/* How many customers are on plan (a walk over the registry). */
size_t tg_customers_on_plan(tg_customers *c, tg_str plan);

#endif
