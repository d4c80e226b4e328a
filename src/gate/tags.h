/* Attribution: who caused a request and what for (the gate after auth).
 *
 * App and customer come from the key. A customer key bills its customer;
 * it may repeat its own id in X-Tollgate-Customer but name no other (403).
 * An app key names its customer per request with X-Tollgate-Customer: the
 * customer must belong to the key's app (403 otherwise); an unknown one is
 * refused (404) or, when the app has create_customers, created with the
 * app's default plan. An admin key may name any known customer. A key of
 * no app bills nobody and may not name a customer.
 *
 * Workspace, user, feature, workflow, run and unit come from the headers
 * X-Tollgate-Workspace, -User, -Feature, -Workflow, -Run, -Unit and
 * -Unit-Count, or else from the body: `user` (a string) and `metadata`
 * (an object of strings) with the keys workspace, user, feature, workflow,
 * run, unit and unit_count. A header wins over the body. Values are 1..128
 * bytes of printable ASCII, not starting or ending with a space; anything
 * else is a 400 that names the header or field. */
#ifndef TG_GATE_TAGS_H
#define TG_GATE_TAGS_H

#include "base/json.h"
#include "conf/config.h"
#include "gate/customers.h"
#include "http/server.h"
#include "meter/record.h"

typedef enum {
    TG_ATTR_OK = 0,
    TG_ATTR_BAD_TAG,          /* 400 */
    TG_ATTR_FORBIDDEN,        /* 403 */
    TG_ATTR_UNKNOWN_CUSTOMER, /* 404 */
    TG_ATTR_NOMEM,            /* 500 */
} tg_attr_result;

typedef struct {
    const tg_app *app;        /* NULL: the key belongs to no app */
    const tg_plan *plan;      /* the customer's plan in this snapshot; NULL: none */
    tg_tags tags;             /* app, customer, plan and the request's tags */
} tg_attribution;

/* Fills *out for a request by key with body root `body` (an object, or
 * NONE for requests without one). On anything but TG_ATTR_OK, err holds a
 * message for the client and *param the header or field at fault (or
 * NULL). reg may be NULL (no customers are created then). */
tg_attr_result tg_attribute(const tg_config *cfg, tg_customers *reg, const tg_key *key,
                            const tg_req *r, tg_json_val body, tg_attribution *out,
                            tg_errmsg *err, const char **param);

/* The printable-ASCII rule above. */
bool tg_tag_value_ok(tg_str v);

#endif
