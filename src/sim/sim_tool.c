/* Tool calls in both dialects: the tool definitions and the tool choice of
 * a request, validated as OpenAI and Anthropic do, and the arguments of a
 * forced call.
 *
 * The sim calls a tool only when the request forces it (OpenAI's
 * tool_choice "required" or a named function, Anthropic's "any" or a
 * named tool); otherwise it answers with text as it always does. A forced
 * call's arguments are a JSON object with one string property per name
 * the tool's JSON schema lists under "properties", each one to three words
 * drawn from the answer's PRNG: so they depend on the seed, the model, the
 * canonical prompt and the tool, never on the dialect, and the same
 * conversation gets the same arguments in both.
 *
 * The arguments' completion tokens are those of their text by
 * tg_sim_count_tokens, and a stream sends one token of that text per
 * event (tg_sim__token_piece), so a max_tokens limit cuts the text as it
 * cuts a text answer: to a prefix of whole tokens. */
#include "sim/sim_int.h"

#include "base/jsonw.h"

#include <stdio.h>

/* OpenAI's and Anthropic's name rule: ^[a-zA-Z0-9_-]{1,max}$ */
static bool name_ok(tg_str n, size_t max)
{
    if (!n.n || n.n > max) return false;
    for (size_t i = 0; i < n.n; i++) {
        char ch = n.p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static bool absent(tg_json_val v)
{
    return v.type == TG_JSON_NONE || v.type == TG_JSON_NULL;
}

/* The string value v equals lit (no escapes: every literal we compare
 * with is plain ASCII, and a client escaping one is not worth a copy). */
static bool str_is(tg_json_val v, const char *lit)
{
    tg_str s;
    return v.type == TG_JSON_STRING && tg_json_str_view(v, &s) && tg_str_eq(s, tg_str_c(lit));
}

typedef struct {
    tg_str name;       /* decoded */
    tg_json_val props; /* the schema's "properties", or NONE */
} tool_def;

typedef struct {
    tool_def t[TG_SIM__MAX_TOOLS];
    size_t n;
    bool given; /* "tools" was in the request (perhaps empty) */
} tool_set;

static tg_json_val schema_props(tg_json_val schema)
{
    tg_json_val p = tg_json_get(schema, TG_STR("properties"));
    return p.type == TG_JSON_OBJECT ? p : (tg_json_val){0};
}

static void force(tg_sim__call *c, const tool_def *t)
{
    c->tool_forced = true;
    c->tool_name = t->name;
    c->tool_props = t->props;
}

static const tool_def *find(const tool_set *s, tg_str name)
{
    for (size_t i = 0; i < s->n; i++)
        if (tg_str_eq(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

/* ---- OpenAI ---- */

static int openai_tool(tg_json_val v, size_t i, tg_arena *a, tool_def *out, tg_sim__err *e)
{
    if (v.type != TG_JSON_OBJECT)
        return tg_sim__err_set(e, 400, "tools",
                               "Invalid type for 'tools[%zu]': expected an object, but got %s "
                               "instead.",
                               i, tg_sim__type_name(v.type));
    tg_json_val type = tg_json_get(v, TG_STR("type"));
    if (absent(type))
        return tg_sim__err_set(e, 400, "tools", "Missing required parameter: 'tools[%zu].type'.",
                               i);
    if (!str_is(type, "function"))
        return tg_sim__err_set(e, 400, "tools",
                               "Invalid value for 'tools[%zu].type': the simulated provider "
                               "supports 'function' tools only.",
                               i);
    tg_json_val fn = tg_json_get(v, TG_STR("function"));
    if (fn.type != TG_JSON_OBJECT)
        return tg_sim__err_set(e, 400, "tools",
                               "Missing required parameter: 'tools[%zu].function'.", i);
    tg_json_val name = tg_json_get(fn, TG_STR("name"));
    if (name.type != TG_JSON_STRING)
        return tg_sim__err_set(e, 400, "tools",
                               "Missing required parameter: 'tools[%zu].function.name'.", i);
    int rc = tg_sim__str_keep(name, a, &out->name, e);
    if (rc) return rc;
    if (!name_ok(out->name, 64))
        return tg_sim__err_set(e, 400, "tools",
                               "Invalid 'tools[%zu].function.name': string does not match "
                               "pattern. Expected a string that matches the pattern "
                               "'^[a-zA-Z0-9_-]{1,64}$'.",
                               i);
    tg_json_val params = tg_json_get(fn, TG_STR("parameters"));
    if (!absent(params) && params.type != TG_JSON_OBJECT)
        return tg_sim__err_set(e, 400, "tools",
                               "Invalid type for 'tools[%zu].function.parameters': expected an "
                               "object, but got %s instead.",
                               i, tg_sim__type_name(params.type));
    out->props = schema_props(params);
    return TG_OK;
}

/* The tools of a request, in either dialect's rules (one: a tool). */
typedef int (*tool_fn)(tg_json_val v, size_t i, tg_arena *a, tool_def *out, tg_sim__err *e);

static int read_tools(tg_json_val tools, tg_arena *a, tool_fn one, bool anthropic, tool_set *s,
                      tg_sim__err *e)
{
    s->n = 0;
    s->given = !absent(tools);
    if (!s->given) return TG_OK;
    if (tools.type != TG_JSON_ARRAY)
        return anthropic ? tg_sim__err_set(e, 400, "tools", "tools: Input should be a valid list")
                         : tg_sim__err_set(e, 400, "tools",
                                           "Invalid type for 'tools': expected an array, but got "
                                           "%s instead.",
                                           tg_sim__type_name(tools.type));
    tg_json_iter it = tg_json_iter_init(tools);
    tg_json_val k, v;
    while (tg_json_iter_next(&it, &k, &v)) {
        if (s->n == TG_SIM__MAX_TOOLS)
            return tg_sim__err_set(e, 400, "tools",
                                   "%s: array too long; the simulated provider takes at most %d "
                                   "tools.",
                                   anthropic ? "tools" : "Invalid 'tools'", TG_SIM__MAX_TOOLS);
        int rc = one(v, s->n, a, &s->t[s->n], e);
        if (rc) return rc;
        s->n++;
    }
    return TG_OK;
}

/* The tool a choice names (a string value), decoded, or NULL. */
static const tool_def *named(const tool_set *s, tg_json_val name, tg_arena *a, tg_str *n,
                             tg_sim__err *e, int *rc)
{
    *rc = tg_sim__str_keep(name, a, n, e);
    if (*rc) return NULL;
    const tool_def *t = find(s, *n);
    if (n->n > 64) n->n = 64; /* what the message quotes */
    return t;
}

static int openai_choice_object(tg_json_val choice, const tool_set *s, tg_arena *a, tg_sim__call *c,
                                tg_sim__err *e)
{
    tg_json_val fn = tg_json_get(choice, TG_STR("function"));
    tg_json_val name = tg_json_get(fn, TG_STR("name"));
    tg_str n;
    const tool_def *t;
    int rc;
    if (!str_is(tg_json_get(choice, TG_STR("type")), "function"))
        return tg_sim__err_set(e, 400, "tool_choice",
                               "Invalid value for 'tool_choice.type': the simulated provider "
                               "supports 'function' only.");
    if (name.type != TG_JSON_STRING)
        return tg_sim__err_set(e, 400, "tool_choice",
                               "Missing required parameter: 'tool_choice.function.name'.");
    if (!(t = named(s, name, a, &n, e, &rc)))
        return rc ? rc
                  : tg_sim__err_set(e, 400, "tool_choice",
                                    "Invalid value for 'tool_choice': function '%.*s' not found "
                                    "in 'tools'.",
                                    TG_STR_FMT(n));
    force(c, t);
    return TG_OK;
}

int tg_sim__tools_openai(tg_json_val root, tg_arena *a, tg_sim__call *c, tg_sim__err *e)
{
    tool_set s;
    tg_json_val choice = tg_json_get(root, TG_STR("tool_choice"));
    int rc = read_tools(tg_json_get(root, TG_STR("tools")), a, openai_tool, false, &s, e);
    if (rc) return rc;
    if (s.given && !s.n)
        return tg_sim__err_set(e, 400, "tools",
                               "Invalid 'tools': empty array. Expected an array with minimum "
                               "length 1, but got an empty array instead.");
    if (absent(choice)) return TG_OK;
    if (!s.n)
        return tg_sim__err_set(e, 400, "tool_choice",
                               "Invalid value for 'tool_choice': 'tool_choice' is only allowed "
                               "when 'tools' are specified.");
    if (choice.type == TG_JSON_OBJECT) return openai_choice_object(choice, &s, a, c, e);
    if (str_is(choice, "none") || str_is(choice, "auto")) return TG_OK;
    if (str_is(choice, "required")) {
        force(c, &s.t[0]);
        return TG_OK;
    }
    return tg_sim__err_set(e, 400, "tool_choice",
                           "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' "
                           "or an object naming a function.");
}

/* ---- Anthropic ---- */

static int anthropic_tool(tg_json_val v, size_t i, tg_arena *a, tool_def *out, tg_sim__err *e)
{
    if (v.type != TG_JSON_OBJECT)
        return tg_sim__err_set(e, 400, NULL, "tools.%zu: Input should be a valid dictionary", i);
    tg_json_val type = tg_json_get(v, TG_STR("type"));
    if (!absent(type) && !str_is(type, "custom"))
        return tg_sim__err_set(e, 400, NULL,
                               "tools.%zu.type: the simulated provider supports custom tools "
                               "only (no type, or \"custom\").",
                               i);
    tg_json_val name = tg_json_get(v, TG_STR("name")), desc = tg_json_get(v, TG_STR("description"));
    tg_json_val schema = tg_json_get(v, TG_STR("input_schema"));
    if (absent(name)) return tg_sim__err_set(e, 400, NULL, "tools.%zu.name: Field required", i);
    if (name.type != TG_JSON_STRING)
        return tg_sim__err_set(e, 400, NULL, "tools.%zu.name: Input should be a valid string", i);
    int rc = tg_sim__str_keep(name, a, &out->name, e);
    if (rc) return rc;
    if (!name_ok(out->name, 128))
        return tg_sim__err_set(e, 400, NULL,
                               "tools.%zu.name: String should match pattern "
                               "'^[a-zA-Z0-9_-]{1,128}$'",
                               i);
    if (!absent(desc) && desc.type != TG_JSON_STRING)
        return tg_sim__err_set(e, 400, NULL,
                               "tools.%zu.description: Input should be a valid string", i);
    if (absent(schema))
        return tg_sim__err_set(e, 400, NULL, "tools.%zu.input_schema: Field required", i);
    if (schema.type != TG_JSON_OBJECT)
        return tg_sim__err_set(e, 400, NULL,
                               "tools.%zu.input_schema: Input should be a valid dictionary", i);
    if (!str_is(tg_json_get(schema, TG_STR("type")), "object"))
        return tg_sim__err_set(e, 400, NULL,
                               "tools.%zu.input_schema.type: Input should be 'object'", i);
    out->props = schema_props(schema);
    return TG_OK;
}

static int anthropic_unique(const tool_set *s, tg_sim__err *e)
{
    for (size_t i = 0; i < s->n; i++)
        for (size_t j = i + 1; j < s->n; j++)
            if (tg_str_eq(s->t[i].name, s->t[j].name))
                return tg_sim__err_set(e, 400, NULL, "tools: Tool names must be unique.");
    return TG_OK;
}

static int anthropic_choice(tg_json_val choice, const tool_set *s, tg_arena *a, tg_sim__call *c,
                            tg_sim__err *e)
{
    tg_json_val type = tg_json_get(choice, TG_STR("type"));
    tg_json_val name = tg_json_get(choice, TG_STR("name"));
    tg_json_val dptu = tg_json_get(choice, TG_STR("disable_parallel_tool_use"));
    tg_str n;
    const tool_def *t;
    int rc;
    if (choice.type != TG_JSON_OBJECT)
        return tg_sim__err_set(e, 400, NULL, "tool_choice: Input should be a valid dictionary");
    if (absent(type)) return tg_sim__err_set(e, 400, NULL, "tool_choice.type: Field required");
    if (!absent(dptu) && dptu.type != TG_JSON_TRUE && dptu.type != TG_JSON_FALSE)
        return tg_sim__err_set(e, 400, NULL,
                               "tool_choice.disable_parallel_tool_use: Input should be a valid "
                               "boolean");
    if (str_is(type, "auto") || str_is(type, "none")) return TG_OK;
    bool any = str_is(type, "any");
    if (!any && !str_is(type, "tool"))
        return tg_sim__err_set(e, 400, NULL,
                               "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'");
    if (!s->n)
        return tg_sim__err_set(e, 400, NULL,
                               "tool_choice: tool_choice may only be specified while providing "
                               "tools.");
    if (any) {
        force(c, &s->t[0]);
        return TG_OK;
    }
    if (absent(name)) return tg_sim__err_set(e, 400, NULL, "tool_choice.name: Field required");
    if (name.type != TG_JSON_STRING)
        return tg_sim__err_set(e, 400, NULL, "tool_choice.name: Input should be a valid string");
    if (!(t = named(s, name, a, &n, e, &rc)))
        return rc ? rc
                  : tg_sim__err_set(e, 400, NULL, "tool_choice: Tool '%.*s' not found in 'tools'.",
                                    TG_STR_FMT(n));
    force(c, t);
    return TG_OK;
}

int tg_sim__tools_anthropic(tg_json_val root, tg_arena *a, tg_sim__call *c, tg_sim__err *e)
{
    tool_set s;
    tg_json_val choice = tg_json_get(root, TG_STR("tool_choice"));
    int rc = read_tools(tg_json_get(root, TG_STR("tools")), a, anthropic_tool, true, &s, e);
    if (!rc) rc = anthropic_unique(&s, e);
    if (!rc && !absent(choice)) rc = anthropic_choice(choice, &s, a, c, e);
    return rc;
}

/* ---- a forced call's arguments ---- */

/* "name":"w1 w2", with the name escaped and 1 to 3 words. */
static int one_arg(tg_buf *out, tg_json_val key, tg_buf *scratch, tg_rng *rng, bool comma)
{
    tg_str name;
    tg_sim__err e;
    int rc = comma ? tg_buf_add_char(out, ',') : TG_OK;
    tg_buf_clear(scratch);
    if (!rc) rc = tg_sim__str_text(key, scratch, &name, &e);
    if (!rc) rc = tg_jsonw_str(out, name);
    if (!rc) rc = tg_buf_add_lit(out, ":\"");
    uint64_t words = 1 + tg_rng_below(rng, 3);
    for (uint64_t w = 0; !rc && w < words; w++)
        rc = tg_buf_add_str(out, tg_sim__word(rng, w == 0));
    if (!rc) rc = tg_buf_add_char(out, '"');
    return rc;
}

int tg_sim__tool_args(tg_buf *out, const tg_sim__call *c, tg_rng rng, size_t within)
{
    size_t start = out->n;
    tg_buf scratch;
    tg_json_iter it = tg_json_iter_init(c->tool_props);
    tg_json_val k, v;
    bool comma = false;
    int rc = tg_buf_add_char(out, '{');
    tg_buf_init(&scratch, TG_SIM__MAX_BODY);
    while (!rc && c->tool_props.type == TG_JSON_OBJECT && tg_json_iter_next(&it, &k, &v)) {
        size_t mark = out->n;
        rc = one_arg(out, k, &scratch, &rng, comma);
        if (!rc && out->n - start > within) {
            out->n = mark; /* this one ends past the cut: the object ends before it */
            break;
        }
        comma = true;
    }
    if (!rc) rc = tg_buf_add_char(out, '}');
    tg_buf_release(&scratch);
    return rc;
}

static bool alnum(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* The bytes tg_sim_count_tokens counts 0: ASCII whitespace and UTF-8
 * continuation bytes. */
static bool counts_zero(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v' ||
           (ch & 0xc0) == 0x80;
}

tg_str tg_sim__token_piece(tg_str text, size_t *at)
{
    const unsigned char *s = (const unsigned char *)text.p;
    size_t i = *at, start = *at;
    while (i < text.n && counts_zero(s[i]))
        i++;
    if (i < text.n && alnum(s[i])) {
        while (i < text.n && alnum(s[i]))
            i++;
    } else if (i < text.n) { /* one byte, with its continuation bytes */
        for (i++; i < text.n && (s[i] & 0xc0) == 0x80; i++)
            ;
    }
    *at = i;
    return tg_str_make(text.p + start, i - start);
}
