/* Translation between the OpenAI and Anthropic dialects (translate.h):
 * every request mapping both ways, every refusal with its message and
 * param, odd inputs (escapes, unicode, empty texts, huge numbers, nested
 * arrays, escaped keys, nulls), round trips that keep the meaning, the
 * non-stream answers and error bodies both ways, and the bounds: every
 * output is valid JSON, a failed call leaves the buffer as it was, and
 * growth stays within a small factor of the input.
 *
 * Bodies are written with ' for " (J() swaps them) to stay readable. */
#include "route/adapters/translate.h"
#include "base/jsonw.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#define CAP (1 << 20)

static tg_buf quoted;
static tg_provider provider = {.name = "p"};
static tg_offering off;

static int setup(void **state)
{
    (void)state;
    tg_buf_init(&quoted, 64);
    if (tg_jsonw_str(&quoted, TG_STR("up"))) return -1;
    off = (tg_offering){
        .id = "p/up", .provider = &provider, .upstream_model = "up", .upstream_json = quoted.p};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tg_buf_release(&quoted);
    return 0;
}

/* s with ' as ", in one of 8 rotating buffers. */
static const char *J(const char *s)
{
    static char ring[8][16384];
    static int next;
    char *d = ring[next++ % 8];
    size_t i = 0;
    for (; s[i] && i < sizeof ring[0] - 1; i++)
        d[i] = s[i] == '\'' ? '"' : s[i];
    d[i] = '\0';
    return d;
}

static void assert_valid(const tg_buf *b)
{
    size_t off_ = 0;
    const char *why = "";
    if (tg_json_validate(b->p, b->n, TG_JSON_NO_DUP_TOPLEVEL, &off_, &why))
        fail_msg("invalid JSON (%s at %zu): %.*s", why, off_, (int)b->n, b->p);
}

/* ---- running a translation ---- */

typedef struct {
    int rc;
    tg_buf out;
    tg_errmsg err;
    tg_translate_param param;
} result;

/* An OpenAI chat body (which must read) into Anthropic. */
static result to_anth(const char *body)
{
    result r;
    tg_openai_req req;
    tg_buf scratch;
    const char *pp;
    tg_buf_init(&scratch, 4096);
    tg_buf_init(&r.out, CAP);
    r.rc = tg_openai_read_request(tg_str_c(body), TG_EP_CHAT, &scratch, &req, &r.err, &pp);
    if (r.rc) fail_msg("the OpenAI reader refused %s: %s", body, r.err.msg);
    r.rc = tg_translate_req_to_anthropic(&req, &off, 1024, &r.out, &r.err, &r.param);
    if (!r.rc)
        assert_valid(&r.out);
    else
        assert_int_equal(r.out.n, 0);
    tg_buf_release(&scratch);
    return r;
}

/* An Anthropic Messages body (which must read) into OpenAI. */
static result to_oai(const char *body)
{
    result r;
    tg_anthropic_req req;
    tg_buf scratch;
    const char *pp;
    tg_buf_init(&scratch, 4096);
    tg_buf_init(&r.out, CAP);
    r.rc = tg_anthropic_read_request(tg_str_c(body), &scratch, &req, &r.err, &pp);
    if (r.rc) fail_msg("the Anthropic reader refused %s: %s", body, r.err.msg);
    r.rc = tg_translate_req_to_openai(&req, &off, &r.out, &r.err, &r.param);
    if (!r.rc)
        assert_valid(&r.out);
    else
        assert_int_equal(r.out.n, 0);
    tg_buf_release(&scratch);
    return r;
}

static void check(result r, const char *body, const char *want)
{
    if (r.rc) fail_msg("refused %s: %s (%s)", body, r.err.msg, r.param.name);
    if (strcmp(r.out.p, want)) fail_msg("for %s\n got: %s\nwant: %s", body, r.out.p, want);
    tg_buf_release(&r.out);
}

static void refused(result r, const char *body, const char *msg, const char *param)
{
    if (r.rc != TG_EINVAL) fail_msg("accepted %s: %s", body, r.out.p);
    if (!strstr(r.err.msg, msg)) fail_msg("for %s: message %s, want %s", body, r.err.msg, msg);
    if (strcmp(r.param.name, param))
        fail_msg("for %s: param %s, want %s", body, r.param.name, param);
    /* the message starts with the field it is about */
    if (*param && strncmp(r.err.msg, param, strlen(param)))
        fail_msg("message %s does not name %s", r.err.msg, param);
    tg_buf_release(&r.out);
}

static void expect_anth(const char *body, const char *want)
{
    check(to_anth(J(body)), J(body), J(want));
}
static void refuse_anth(const char *body, const char *msg, const char *param)
{
    refused(to_anth(J(body)), J(body), msg, param);
}
static void expect_oai(const char *body, const char *want)
{
    check(to_oai(J(body)), J(body), J(want));
}
static void refuse_oai(const char *body, const char *msg, const char *param)
{
    refused(to_oai(J(body)), J(body), msg, param);
}

/* ---- OpenAI request -> Anthropic ---- */

static void test_anth_full(void **state)
{
    (void)state;
    expect_anth(
        "{'model':'fast','messages':["
        "{'role':'system','content':'Be brief.'},"
        "{'role':'developer','content':[{'type':'text','text':'Use tools.'}]},"
        "{'role':'user','content':'Weather in Paris?'},"
        "{'role':'user','content':[{'type':'text','text':'And Rome'},"
        "{'type':'image_url','image_url':{'url':'data:image/png;base64,iVBORw0KGgo='}},"
        "{'type':'image_url','image_url':{'url':'https://x.test/a.jpg','detail':'auto'}}]},"
        "{'role':'assistant','content':'','tool_calls':["
        "{'id':'call_1','type':'function','function':{'name':'weather','arguments':'{\\'city\\':\\'"
        "Paris\\'}'}},"
        "{'id':'call_2','type':'function','function':{'name':'weather','arguments':'{\\'city\\':\\'"
        "Rome\\'}'}}]},"
        "{'role':'tool','tool_call_id':'call_1','content':'18C'},"
        "{'role':'tool','tool_call_id':'call_2','content':[{'type':'text','text':'21C'}]},"
        "{'role':'user','content':'thanks'}],"
        "'max_completion_tokens':200,'temperature':0.5,'top_p':0.9,'stop':['END'],'stream':true,"
        "'stream_options':{'include_usage':true},"
        "'tools':[{'type':'function','function':{'name':'weather','description':'Get weather',"
        "'parameters':{'type':'object','properties':{'city':{'type':'string'}}}}}],"
        "'tool_choice':'required','parallel_tool_calls':false,'user':'u-42','n':1,'logprobs':false,"
        "'presence_penalty':0,'response_format':{'type':'text'},'metadata':{'feature':'chat'}}",
        "{'model':'up','max_tokens':200,'system':[{'type':'text','text':'Be brief.'},"
        "{'type':'text','text':'Use tools.'}],'messages':["
        "{'role':'user','content':[{'type':'text','text':'Weather in "
        "Paris?'},{'type':'text','text':'And Rome'},"
        "{'type':'image','source':{'type':'base64','media_type':'image/"
        "png','data':'iVBORw0KGgo='}},"
        "{'type':'image','source':{'type':'url','url':'https://x.test/a.jpg'}}]},"
        "{'role':'assistant','content':[{'type':'tool_use','id':'call_1','name':'weather','input':{"
        "'city':'Paris'}},"
        "{'type':'tool_use','id':'call_2','name':'weather','input':{'city':'Rome'}}]},"
        "{'role':'user','content':[{'type':'tool_result','tool_use_id':'call_1','content':'18C'},"
        "{'type':'tool_result','tool_use_id':'call_2','content':[{'type':'text','text':'21C'}]},"
        "{'type':'text','text':'thanks'}]}],"
        "'stop_sequences':['END'],'temperature':0.5,'top_p':0.9,'stream':true,"
        "'tools':[{'name':'weather','description':'Get weather','input_schema':{'type':'object',"
        "'properties':{'city':{'type':'string'}}}}],"
        "'tool_choice':{'type':'any','disable_parallel_tool_use':true},'metadata':{'user_id':'u-42'"
        "}}");
}

static void test_anth_system_and_roles(void **state)
{
    (void)state;
    /* one system message with string content: a string; default max_tokens */
    expect_anth(
        "{'model':'m','messages':[{'role':'system','content':'S'},{'role':'user','content':'hi'}]}",
        "{'model':'up','max_tokens':1024,'system':'S','messages':[{'role':'user','content':"
        "[{'type':'text','text':'hi'}]}]}");
    /* empty system prompts say nothing: no system */
    expect_anth("{'model':'m','messages':[{'role':'developer','content':''},{'role':'user','"
                "content':'hi'}]}",
                "{'model':'up','max_tokens':1024,'messages':[{'role':'user','content':[{'type':'"
                "text','text':'hi'}]}]}");
    expect_anth("{'model':'m','messages':[{'role':'system','content':[{'type':'text','text':''}]},"
                "{'role':'system','content':''},{'role':'user','content':'hi'}]}",
                "{'model':'up','max_tokens':1024,'messages':[{'role':'user','content':[{'type':'"
                "text','text':'hi'}]}]}");
    /* a conversation may start with the assistant; same-role runs merge;
     * empty texts are left out; max_tokens when given */
    expect_anth(
        "{'model':'m','max_tokens':7,'messages':[{'role':'assistant','content':'a'},"
        "{'role':'assistant','content':[{'type':'text','text':''},{'type':'text','text':'b'}]},"
        "{'role':'user','content':'c'},{'role':'tool','tool_call_id':'t-1','content':''},"
        "{'role':'user','content':[{'type':'text','text':'d'}]}]}",
        "{'model':'up','max_tokens':7,'messages':[{'role':'assistant','content':[{'type':'text','"
        "text':'a'},"
        "{'type':'text','text':'b'}]},{'role':'user','content':[{'type':'text','text':'c'},"
        "{'type':'tool_result','tool_use_id':'t-1','content':''},{'type':'text','text':'d'}]}]}");
    /* empty arguments are {} */
    expect_anth("{'model':'m','messages':[{'role':'assistant','tool_calls':[{'id':'c','type':'"
                "function','function':"
                "{'name':'f','arguments':''}}]}]}",
                "{'model':'up','max_tokens':1024,'messages':[{'role':'assistant','content':[{'type'"
                ":'tool_use',"
                "'id':'c','name':'f','input':{}}]}]}");
    /* max_completion_tokens wins over max_tokens (the reader's rule) */
    expect_anth("{'model':'m','max_tokens':7,'max_completion_tokens':9,'messages':[{'role':'user','"
                "content':'x'}]}",
                "{'model':'up','max_tokens':9,'messages':[{'role':'user','content':[{'type':'text',"
                "'text':'x'}]}]}");
}

static void test_anth_tools(void **state)
{
    (void)state;
    static const char *const base = "{'model':'m','messages':[{'role':'user','content':'x'}],"
                                    "'tools':[{'type':'function','function':{'name':'f'}}]%s}";
    static const struct {
        const char *extra, *choice;
    } cases[] = {
        {"", ""},
        {",'tool_choice':'auto'", ",'tool_choice':{'type':'auto'}"},
        {",'tool_choice':'none'", ",'tool_choice':{'type':'none'}"},
        {",'tool_choice':'required'", ",'tool_choice':{'type':'any'}"},
        {",'tool_choice':{'type':'function','function':{'name':'f'}}",
         ",'tool_choice':{'type':'tool','name':'f'}"},
        {",'parallel_tool_calls':false",
         ",'tool_choice':{'type':'auto','disable_parallel_tool_use':true}"},
        {",'parallel_tool_calls':true", ""},
        {",'parallel_tool_calls':false,'tool_choice':'none'", ",'tool_choice':{'type':'none'}"},
        {",'parallel_tool_calls':false,'tool_choice':{'type':'function','function':{'name':'f'}}",
         ",'tool_choice':{'type':'tool','name':'f','disable_parallel_tool_use':true}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512], want[512];
        snprintf(body, sizeof body, base, cases[i].extra);
        snprintf(want, sizeof want,
                 "{'model':'up','max_tokens':1024,'messages':[{'role':'user','content':[{'type':'"
                 "text','text':'x'}]}],"
                 "'tools':[{'name':'f','input_schema':{'type':'object','properties':{}}}]%s}",
                 cases[i].choice);
        expect_anth(body, want);
    }
    /* without tools: auto, none and parallel say nothing; an empty list offers nothing */
    expect_anth(
        "{'model':'m','messages':[{'role':'user','content':'x'}],'tools':[],'tool_choice':'none',"
        "'parallel_tool_calls':false}",
        "{'model':'up','max_tokens':1024,'messages':[{'role':'user','content':[{'type':'text','"
        "text':'x'}]}]}");
    /* description, nested schema kept byte for byte, strict false */
    expect_anth("{'model':'m','messages':[{'role':'user','content':'x'}],'tools':[{'type':'"
                "function','function':"
                "{'name':'g','description':'d\\u00e9','strict':false,'parameters':{'type':'object',"
                "'properties':"
                "{'m':{'type':'array','items':{'type':'array','items':[[1,[2,[3]]]]}}}}}}]}",
                "{'model':'up','max_tokens':1024,'messages':[{'role':'user','content':[{'type':'"
                "text','text':'x'}]}],"
                "'tools':[{'name':'g','description':'d\\u00e9','input_schema':{'type':'object','"
                "properties':"
                "{'m':{'type':'array','items':{'type':'array','items':[[1,[2,[3]]]]}}}}}]}");
}

static void test_anth_accepted(void **state)
{
    (void)state;
    /* fields whose value asks for nothing Claude lacks, nulls, the gateway's own */
    expect_anth("{'model':'m','messages':[{'role':'user','content':'x'}],'n':1,'logprobs':false,"
                "'top_logprobs':0,'logit_bias':{},'presence_penalty':0.0,'frequency_penalty':-0e3,"
                "'response_format':{'type':'text'},'modalities':['text'],'store':false,'seed':null,"
                "'audio':null,'stream_options':{'include_usage':false},'metadata':{'feature':'f'},"
                "'temperature':1,'top_p':1e-2,'stop':'\\n\\n','stream':false}",
                "{'model':'up','max_tokens':1024,'messages':[{'role':'user','content':[{'type':'"
                "text','text':'x'}]}],"
                "'stop_sequences':['\\n\\n'],'temperature':1,'top_p':1e-2}");
    /* an empty stop list is no stop list */
    expect_anth(
        "{'model':'m','messages':[{'role':'user','content':'x'}],'stop':[],'temperature':0}",
        "{'model':'up','max_tokens':1024,'messages':[{'role':'user','content':[{'type':'text','"
        "text':'x'}]}],"
        "'temperature':0}");
}

static void test_anth_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *extra, *msg, *param;
    } top[] = {
        {"'n':2", "answers with one choice per request", "n"},
        {"'logprobs':true", "Claude (Anthropic) provider cannot honour this field; remove it",
         "logprobs"},
        {"'top_logprobs':3", "cannot honour this field", "top_logprobs"},
        {"'logit_bias':{'50256':-100}", "cannot honour this field", "logit_bias"},
        {"'presence_penalty':0.5", "cannot honour this field", "presence_penalty"},
        {"'frequency_penalty':-1", "cannot honour this field", "frequency_penalty"},
        {"'seed':42", "cannot honour this field", "seed"},
        {"'response_format':{'type':'json_object'}", "cannot honour this field", "response_format"},
        {"'response_format':{'type':'json_schema','json_schema':{}}", "cannot honour this field",
         "response_format"},
        {"'audio':{'voice':'alloy','format':'wav'}", "cannot honour this field", "audio"},
        {"'modalities':['text','audio']", "cannot honour this field", "modalities"},
        {"'prediction':{'type':'content','content':'x'}", "cannot honour this field", "prediction"},
        {"'reasoning_effort':'low'", "cannot honour this field", "reasoning_effort"},
        {"'store':true", "cannot honour this field", "store"},
        {"'service_tier':'flex'",
         "unknown field; this model's Claude (Anthropic) provider cannot honour it",
         "service_tier"},
        {"'functions':[{'name':'f'}]", "unknown field", "functions"},
        {"'m\\u006fdalities':['audio']", "cannot honour this field", "modalities"},
        {"'temperature':1.5", "Claude takes a temperature from 0 to 1", "temperature"},
        {"'temperature':-0.1", "from 0 to 1", "temperature"},
        {"'temperature':1e400", "from 0 to 1", "temperature"},
        {"'temperature':'0.5'", "must be a number", "temperature"},
        {"'top_p':'1'", "must be a number", "top_p"},
        {"'max_tokens':0", "needs room for at least 1 token", "max_tokens"},
        {"'max_completion_tokens':0", "needs room for at least 1 token", "max_completion_tokens"},
        {"'user':7", "must be a string", "user"},
        {"'stop':7", "must be a string or an array of strings", "stop"},
        {"'stop':['a',null]", "must be a string or an array of strings", "stop"},
        {"'parallel_tool_calls':'no'", "must be a boolean", "parallel_tool_calls"},
        {"'tool_choice':'required'", "asks for a tool call but the request offers no tools",
         "tool_choice"},
        {"'tool_choice':{'type':'function','function':{'name':'f'}}", "offers no tools",
         "tool_choice"},
        {"'tools':{}", "must be an array", "tools"},
        {"'tools':[{'type':'custom','custom':{'name':'c'}}]", "can be offered function tools only",
         "tools[0].type"},
        {"'tools':[{'type':'function','function':{'name':'f','strict':true}}]",
         "cannot honour this field", "tools[0].function.strict"},
        {"'tools':[{'type':'function','function':{'name':'f','parameters':[]}}]",
         "must be a JSON Schema object", "tools[0].function.parameters"},
        {"'tools':[{'type':'function','function':{'name':3}}]", "must be a string",
         "tools[0].function.name"},
        {"'tools':[{'type':'function','function':{'name':'f','x':1}}]", "unknown field",
         "tools[0].function.x"},
        {"'tools':[{'type':'function','function':{'name':'f'}}],'tool_choice':'sometimes'",
         "must be \"auto\", \"required\", \"none\" or a named function", "tool_choice"},
        {"'tools':[{'type':'function','function':{'name':'f'}}],'tool_choice':{'type':'allowed_"
         "tools'}",
         "takes a named choice of a function tool only", "tool_choice.type"},
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{'model':'m','messages':[{'role':'user','content':'x'}],%s}",
                 top[i].extra);
        refuse_anth(body, top[i].msg, top[i].param);
    }
    static const struct {
        const char *messages, *msg, *param;
    } msgs[] = {
        {"{'role':'system','content':'s'}", "needs at least one user or assistant message",
         "messages"},
        {"{'role':'user','content':'a'},{'role':'system','content':'s'}",
         "a system message after the conversation started", "messages[1].role"},
        {"{'role':'user','content':'a'},{'role':'developer','content':'s'}",
         "only before the first user", "messages[1].role"},
        {"{'role':'function','name':'f','content':'a'}", "deprecated function role",
         "messages[0].role"},
        {"{'role':'robot','content':'a'}", "unknown role", "messages[0].role"},
        {"{'content':'a'}", "field required", "messages[0].role"},
        {"7", "must be an object (a message)", "messages[0]"},
        {"{'role':'user'}", "field required", "messages[0].content"},
        {"{'role':'user','content':3}", "must be a string or an array of content parts",
         "messages[0].content"},
        {"{'role':'user','content':''}", "the message has no content", "messages[0].content"},
        {"{'role':'assistant','content':null}", "the message has no content",
         "messages[0].content"},
        {"{'role':'user','content':'a','name':'bob'}", "cannot honour this field",
         "messages[0].name"},
        {"{'role':'user','content':[{'type':'input_audio','input_audio':{'data':'AA','format':'wav'"
         "}}]}",
         "cannot take input_audio parts; send text or images", "messages[0].content[0].type"},
        {"{'role':'user','content':[{'type':'file','file':{'file_id':'f'}}]}",
         "cannot take file parts", "messages[0].content[0].type"},
        {"{'role':'user','content':[{'type':'video'}]}", "unknown content part type",
         "messages[0].content[0].type"},
        {"{'role':'user','content':[3]}", "must be an object (a content part)",
         "messages[0].content[0]"},
        {"{'role':'user','content':[{'type':'text','text':'a','extra':1}]}", "unknown field",
         "messages[0].content[0].extra"},
        {"{'role':'user','content':[{'type':'text'}]}", "must be a string",
         "messages[0].content[0].text"},
        {"{'role':'user','content':[{'type':'image_url','image_url':{'url':'http://x/"
         "a.png','detail':'low'}}]}",
         "picks the image resolution itself", "messages[0].content[0].image_url.detail"},
        {"{'role':'user','content':[{'type':'image_url','image_url':{'url':'data:image/"
         "bmp;base64,AA'}}]}",
         "takes image/jpeg, image/png, image/gif or image/webp",
         "messages[0].content[0].image_url.url"},
        {"{'role':'user','content':[{'type':'image_url','image_url':{'url':'data:image/png,AA'}}]}",
         "must hold base64 data", "messages[0].content[0].image_url.url"},
        {"{'role':'user','content':[{'type':'image_url','image_url':{'url':'ftp://x/a.png'}}]}",
         "http(s) URLs or base64 data: URLs", "messages[0].content[0].image_url.url"},
        {"{'role':'user','content':[{'type':'image_url','image_url':'http://x'}]}",
         "must be an object with a url", "messages[0].content[0].image_url"},
        {"{'role':'user','content':[{'type':'image_url','image_url':{'url':5}}]}",
         "must be a string", "messages[0].content[0].image_url.url"},
        {"{'role':'user','content':'a'},{'role':'assistant','content':[{'type':'refusal','refusal':"
         "'no'}]}",
         "cannot take refusal parts; send text", "messages[1].content[0].type"},
        {"{'role':'user','content':'a'},{'role':'assistant','content':[{'type':'image_url','image_"
         "url':{'url':'http://x'}}]}",
         "unknown content part type; expected text", "messages[1].content[0].type"},
        {"{'role':'user','content':'a'},{'role':'assistant','content':'b','refusal':'no'}",
         "cannot honour this field", "messages[1].refusal"},
        {"{'role':'user','content':'a'},{'role':'assistant','content':'b','audio':{'id':'a'}}",
         "cannot honour", "messages[1].audio"},
        {"{'role':'user','content':'a'},{'role':'assistant','function_call':{'name':'f','arguments'"
         ":'{}'}}",
         "cannot honour", "messages[1].function_call"},
        {"{'role':'assistant','tool_calls':{}}", "must be an array", "messages[0].tool_calls"},
        {"{'role':'assistant','tool_calls':[{'id':'call "
         "1','type':'function','function':{'name':'f','arguments':'{}'}}]}",
         "tool call ids made of letters, digits", "messages[0].tool_calls[0].id"},
        {"{'role':'assistant','tool_calls':[{'type':'function','function':{'name':'f','arguments':'"
         "{}'}}]}",
         "must be a string", "messages[0].tool_calls[0].id"},
        {"{'role':'assistant','tool_calls':[{'id':'c','type':'custom','custom':{}}]}",
         "unknown field", "messages[0].tool_calls[0].custom"},
        {"{'role':'assistant','tool_calls':[{'id':'c','type':'other','function':{}}]}",
         "must be \"function\"", "messages[0].tool_calls[0].type"},
        {"{'role':'assistant','tool_calls':[{'id':'c','function':{'name':'f','arguments':'[1]'}}]}",
         "must be a JSON object", "messages[0].tool_calls[0].function.arguments"},
        {"{'role':'assistant','tool_calls':[{'id':'c','function':{'name':'f','arguments':'{bad'}}]"
         "}",
         "must be a JSON object", "messages[0].tool_calls[0].function.arguments"},
        {"{'role':'assistant','tool_calls':[{'id':'c','function':{'name':'f','arguments':{}}}]}",
         "must be a string of JSON", "messages[0].tool_calls[0].function.arguments"},
        {"{'role':'assistant','tool_calls':[{'id':'c','function':{'arguments':'{}'}}]}",
         "must be a string", "messages[0].tool_calls[0].function.name"},
        {"{'role':'assistant','tool_calls':[{'id':'c','function':'f'}]}", "must be an object",
         "messages[0].tool_calls[0].function"},
        {"{'role':'tool','content':'x'}", "must be a string", "messages[0].tool_call_id"},
        {"{'role':'tool','tool_call_id':'a.b','content':'x'}", "letters, digits",
         "messages[0].tool_call_id"},
        {"{'role':'tool','tool_call_id':'c','content':[{'type':'image_url','image_url':{'url':'"
         "http://x'}}]}",
         "a tool message's content parts must be text parts", "messages[0].content[0]"},
        {"{'role':'tool','tool_call_id':'c'}", "must be a string or an array of text parts",
         "messages[0].content"},
        {"{'role':'system','content':[{'type':'image_url'}]},{'role':'user','content':'x'}",
         "a system message's content parts must be text parts", "messages[0].content[0]"},
        {"{'role':'system','content':'s','name':'n'},{'role':'user','content':'x'}",
         "cannot honour this field", "messages[0].name"},
        {"{'role':'system','content':7},{'role':'system','content':'s'},{'role':'user','content':'"
         "x'}",
         "must be a string or an array of text parts", "messages[0].content"},
    };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        char body[1024];
        snprintf(body, sizeof body, "{'model':'m','messages':[%s]}", msgs[i].messages);
        refuse_anth(body, msgs[i].msg, msgs[i].param);
    }
    refuse_anth("{'model':'m','messages':[{'role':'user','content':'a','content':'b'}]}",
                "appears twice", "messages[0].content");
    refuse_anth("{'model':'m','messages':[{'role':'user','content':[{'type':'text','text':'a','"
                "text':null}]}]}",
                "appears twice", "messages[0].content[0].text");
    refuse_anth("{'model':'m'}", "field required", "messages");
    refuse_anth("{'model':'m','messages':{}}", "must be an array", "messages");
}

static void test_anth_odd(void **state)
{
    (void)state;
    /* escapes and unicode pass as they came; escaped keys are read;
     * arguments are decoded (the input is the object they spell) */
    static const char body[] =
        "{\"m\\u006fdel\":\"m\",\"messages\":[{\"r\\u006fle\":\"user\",\"content\":\"caf\\u00e9 "
        "\\ud83d\\ude00 "
        "\\\"q\\\" \\\\ \\n "
        "\xe2\x82\xac\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\\u0031\",\"function\":"
        "{\"name\":\"f\",\"arguments\":\"{\\\"s\\\":\\\"\\\\u00e9\\\\\\\"\\\",\\\"n\\\":[[1,[2]],{}"
        "]}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"\\u0000x\"}],"
        "\"temperature\":0.00000000000000000000000000000000000000000000000001,\"max_tokens\":"
        "100000000}";
    result r = to_anth(body);
    check(r, body,
          "{\"model\":\"up\",\"max_tokens\":100000000,\"messages\":[{\"role\":\"user\",\"content\":"
          "[{\"type\":\"text\","
          "\"text\":\"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\n "
          "\xe2\x82\xac\"}]},{\"role\":\"assistant\",\"content\":"
          "[{\"type\":\"tool_use\",\"id\":\"c\\u0031\",\"name\":\"f\",\"input\":{\"s\":"
          "\"\\u00e9\\\"\",\"n\":[[1,[2]],{}]}}]},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"c1\","
          "\"content\":\"\\u0000x\"}]}],"
          "\"temperature\":0.00000000000000000000000000000000000000000000000001}");
    /* an escaped role value and escaped image URL */
    expect_anth("{'model':'m','messages':[{'role':'\\u0075ser','content':[{'type':'im\\u0061ge_url'"
                ",'image_url':"
                "{'url':'https:\\/\\/x.test\\/\\u00e9.png'}}]}]}",
                "{'model':'up','max_tokens':1024,'messages':[{'role':'user','content':[{'type':'"
                "image','source':"
                "{'type':'url','url':'https://x.test/\xc3\xa9.png'}}]}]}");
}

/* ---- Anthropic request -> OpenAI ---- */

static void test_oai_full(void **state)
{
    (void)state;
    expect_oai(
        "{'model':'claude','max_tokens':300,'system':[{'type':'text','text':'Be "
        "brief.','cache_control':"
        "{'type':'ephemeral'}},{'type':'text','text':'Use tools.'}],'messages':["
        "{'role':'user','content':[{'type':'text','text':'Weather?'},{'type':'image','source':{'"
        "type':'base64',"
        "'media_type':'image/"
        "png','data':'iVBORw0KGgo='}},{'type':'image','source':{'type':'url','url':'https://x/"
        "a.jpg'}}]},"
        "{'role':'assistant','content':[{'type':'text','text':'Checking.'},{'type':'tool_use','id':"
        "'toolu_1','name':"
        "'weather','input':{'city': 'Paris'}}]},"
        "{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_1','content':'18C'},{"
        "'type':'text',"
        "'text':'thanks'}]},{'role':'assistant','content':'You are welcome.'}],"
        "'stop_sequences':['END','STOP'],'temperature':0.3,'top_p':0.8,'stream':true,"
        "'tools':[{'name':'weather','description':'Get "
        "weather','input_schema':{'type':'object','properties':"
        "{'city':{'type':'string'}}},'cache_control':{'type':'ephemeral'}}],"
        "'tool_choice':{'type':'any','disable_parallel_tool_use':true},'metadata':{'user_id':'u-1',"
        "'feature':'f'}}",
        "{'model':'up','messages':[{'role':'system','content':[{'type':'text','text':'Be "
        "brief.'},{'type':'text',"
        "'text':'Use "
        "tools.'}]},{'role':'user','content':[{'type':'text','text':'Weather?'},{'type':'image_url'"
        ","
        "'image_url':{'url':'data:image/"
        "png;base64,iVBORw0KGgo='}},{'type':'image_url','image_url':{'url':"
        "'https://x/"
        "a.jpg'}}]},{'role':'assistant','content':'Checking.','tool_calls':[{'id':'toolu_1','type':"
        "'function','function':{'name':'weather','arguments':'{\\'city\\': \\'Paris\\'}'}}]},"
        "{'role':'tool','tool_call_id':'toolu_1','content':'18C'},{'role':'user','content':'thanks'"
        "},"
        "{'role':'assistant','content':'You are welcome.'}],'max_tokens':300,'stop':['END','STOP'],"
        "'temperature':0.3,'top_p':0.8,'stream':true,'stream_options':{'include_usage':true},"
        "'tools':[{'type':'function','function':{'name':'weather','description':'Get "
        "weather','parameters':"
        "{'type':'object','properties':{'city':{'type':'string'}}}}}],'tool_choice':'required',"
        "'parallel_tool_calls':false,'user':'u-1'}");
}

static void test_oai_blocks(void **state)
{
    (void)state;
    /* blocks keep their order: text, tool result, text and image, tool
     * result; is_error is said in the content */
    expect_oai(
        "{'model':'c','max_tokens':5,'messages':[{'role':'user','content':[{'type':'text','text':'"
        "a'},"
        "{'type':'tool_result','tool_use_id':'t','is_error':true},{'type':'text','text':'b'},"
        "{'type':'image','source':{'type':'base64','media_type':'image/gif','data':'R0lG'}},"
        "{'type':'tool_result','tool_use_id':'u','content':[{'type':'text','text':'x'}],'is_error':"
        "true},"
        "{'type':'tool_result','tool_use_id':'v','content':'boom','is_error':true},"
        "{'type':'tool_result','tool_use_id':'w','is_error':false}]}]}",
        "{'model':'up','messages':[{'role':'user','content':'a'},{'role':'tool','tool_call_id':'t',"
        "'content':'Error'},{'role':'user','content':[{'type':'text','text':'b'},{'type':'image_"
        "url',"
        "'image_url':{'url':'data:image/"
        "gif;base64,R0lG'}}]},{'role':'tool','tool_call_id':'u','content':"
        "[{'type':'text','text':'Error:'},{'type':'text','text':'x'}]},{'role':'tool','tool_call_"
        "id':'v',"
        "'content':'Error: "
        "boom'},{'role':'tool','tool_call_id':'w','content':''}],'max_tokens':5}");
    /* assistant: several texts as parts, tool calls only (content null),
     * tool_choice variants */
    expect_oai(
        "{'model':'c','max_tokens':5,'messages':[{'role':'user','content':'q'},{'role':'assistant',"
        "'content':[{'type':'text','text':'a'},{'type':'tool_use','id':'t1','name':'f','input':{}},"
        "{'type':'text','text':'b'}]},{'role':'user','content':[{'type':'tool_result','tool_use_id'"
        ":'t1'}]},"
        "{'role':'assistant','content':[{'type':'tool_use','id':'t2','name':'g','input':{'k':[1,{'"
        "z':null}]}}]}],"
        "'tools':[{'type':'custom','name':'f','input_schema':{'type':'object'}},{'name':'g'}],"
        "'tool_choice':{'type':'tool','name':'g'},'system':'sys'}",
        "{'model':'up','messages':[{'role':'system','content':'sys'},{'role':'user','content':'q'},"
        "{'role':'assistant','content':[{'type':'text','text':'a'},{'type':'text','text':'b'}],'"
        "tool_calls':"
        "[{'id':'t1','type':'function','function':{'name':'f','arguments':'{}'}}]},{'role':'tool',"
        "'tool_call_id':'t1','content':''},{'role':'assistant','content':null,'tool_calls':[{'id':'"
        "t2',"
        "'type':'function','function':{'name':'g','arguments':'{\\'k\\':[1,{\\'z\\':null}]}'}}]}],"
        "'max_tokens':5,'tools':[{'type':'function','function':{'name':'f','parameters':{'type':'"
        "object'}}},"
        "{'type':'function','function':{'name':'g'}}],'tool_choice':{'type':'function','function':{"
        "'name':'g'}}}");
    static const struct {
        const char *choice, *want;
    } choices[] = {
        {"{'type':'auto'}", ",'tool_choice':'auto'"},
        {"{'type':'none'}", ",'tool_choice':'none'"},
        {"{'type':'any'}", ",'tool_choice':'required'"},
        {"{'type':'auto','disable_parallel_tool_use':true}",
         ",'tool_choice':'auto','parallel_tool_calls':false"},
        {"{'type':'auto','disable_parallel_tool_use':false}", ",'tool_choice':'auto'"},
    };
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        char body[512], want[512];
        snprintf(body, sizeof body,
                 "{'model':'c','max_tokens':5,'messages':[{'role':'user','content':'q'}],"
                 "'tools':[{'name':'f'}],'tool_choice':%s}",
                 choices[i].choice);
        snprintf(want, sizeof want,
                 "{'model':'up','messages':[{'role':'user','content':'q'}],'max_tokens':5,"
                 "'tools':[{'type':'function','function':{'name':'f'}}]%s}",
                 choices[i].want);
        expect_oai(body, want);
    }
    /* without tools: auto and none say nothing; thinking disabled, empty
     * system, empty stop list, null fields, the gateway's metadata keys */
    expect_oai("{'model':'c','max_tokens':5,'messages':[{'role':'user','content':'q'}],'tools':[],"
               "'tool_choice':{'type':'none'},'thinking':{'type':'disabled'},'system':'','stop_"
               "sequences':[],"
               "'top_k':null,'metadata':{'workspace':'w','user':'u','feature':'f','workflow':'x','"
               "run':'r',"
               "'unit':'doc','unit_count':3,'user_id':null}}",
               "{'model':'up','messages':[{'role':'user','content':'q'}],'max_tokens':5}");
    /* a single system block: a string; escapes and unicode pass */
    expect_oai(
        "{'model':'c','max_tokens':5,'system':[{'type':'text','text':'\\u00e9\\n'}],'messages':[{'"
        "role':"
        "'user','content':[{'type':'text','text':'\xf0\x9f\x98\x80 \\\\ \\ud83d\\ude00'}]}]}",
        "{'model':'up','messages':[{'role':'system','content':'\\u00e9\\n'},{'role':'user','"
        "content':"
        "'\xf0\x9f\x98\x80 \\\\ \\ud83d\\ude00'}],'max_tokens':5}");
    /* a tool input with whitespace and escapes: arguments is its text */
    static const char spaced[] =
        "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":"
        "[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{ \"q\" :\n\"a\\\"b\\\\\" "
        "}}]}]}";
    check(to_oai(spaced), spaced,
          "{\"model\":\"up\",\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
          "[{\"id\":\"t\","
          "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{ \\\"q\\\" "
          ":\\n\\\"a\\\\\\\"b\\\\\\\\\\\" }\"}}]}],"
          "\"max_tokens\":5}");
}

static void test_oai_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *extra, *msg, *param;
    } top[] = {
        {"'top_k':5", "OpenAI-compatible provider cannot honour this field; remove it", "top_k"},
        {"'thinking':{'type':'enabled','budget_tokens':2048}", "has no extended thinking",
         "thinking"},
        {"'stop_sequences':['1','2','3','4','5']", "takes at most 4 stop sequences",
         "stop_sequences"},
        {"'service_tier':'auto'",
         "unknown field; this model's OpenAI-compatible provider cannot honour it", "service_tier"},
        {"'mcp_servers':[]", "unknown field", "mcp_servers"},
        {"'metadata':{'user_id':'u','session':'s'}", "unknown field", "metadata.session"},
        {"'metadata':{'user_id':5}", "must be a string", "metadata.user_id"},
        {"'tools':[{'type':'web_search_20250305','name':'web_search'}]",
         "server tools run at Anthropic", "tools[0].type"},
        {"'tools':[{'type':'bash_20250124','name':'bash'}]", "server tools", "tools[0].type"},
        {"'tools':[{'name':'f','strict':true}]", "unknown field", "tools[0].strict"},
        {"'tools':[{'name':3}]", "must be a string", "tools[0].name"},
        {"'tools':[{'name':'f','input_schema':[]}]", "must be a JSON Schema object",
         "tools[0].input_schema"},
        {"'tools':[5]", "must be an object", "tools[0]"},
        {"'tool_choice':{'type':'any'}", "asks for a tool call but the request offers no tools",
         "tool_choice"},
        {"'tool_choice':{'type':'tool','name':'f'}", "offers no tools", "tool_choice"},
        {"'tools':[{'name':'f'}],'tool_choice':{'type':'maybe'}", "must be auto, any, none or tool",
         "tool_choice.type"},
        {"'tools':[{'name':'f'}],'tool_choice':{'type':'tool'}", "must be a string",
         "tool_choice.name"},
        {"'tools':[{'name':'f'}],'tool_choice':{'type':'auto','disable_parallel_tool_use':1}",
         "must be a boolean", "tool_choice.disable_parallel_tool_use"},
        {"'tools':[{'name':'f'}],'tool_choice':{'type':'auto','x':1}", "unknown field",
         "tool_choice.x"},
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{'model':'c','max_tokens':5,'messages':[{'role':'user','content':'q'}],%s}",
                 top[i].extra);
        refuse_oai(body, top[i].msg, top[i].param);
    }
    static const struct {
        const char *messages, *msg, *param;
    } msgs[] = {
        {"{'role':'system','content':'s'}", "must be \"user\" or \"assistant\"",
         "messages[0].role"},
        {"{'content':'s'}", "field required", "messages[0].role"},
        {"{'role':'user'}", "field required", "messages[0].content"},
        {"{'role':'user','content':5}", "must be a string or an array of blocks",
         "messages[0].content"},
        {"{'role':'user','content':[]}", "must hold at least one block", "messages[0].content"},
        {"{'role':'user','content':'a','name':'n'}", "unknown field", "messages[0].name"},
        {"7", "must be an object (a message)", "messages[0]"},
        {"{'role':'user','content':[7]}", "must be an object (a content block)",
         "messages[0].content[0]"},
        {"{'role':'user','content':[{'type':'document','source':{'type':'text','data':'x'}}]}",
         "cannot take document blocks", "messages[0].content[0].type"},
        {"{'role':'user','content':[{'type':'search_result','source':'s'}]}",
         "cannot take search_result blocks", "messages[0].content[0].type"},
        {"{'role':'user','content':[{'text':'x'}]}", "field required, a string",
         "messages[0].content[0].type"},
        {"{'role':'user','content':[{'type':'tool_use','id':'t','name':'f','input':{}}]}",
         "tool_use blocks belong in assistant messages", "messages[0].content[0].type"},
        {"{'role':'assistant','content':[{'type':'tool_result','tool_use_id':'t'}]}", "misplaced",
         "messages[0].content[0].type"},
        {"{'role':'assistant','content':[{'type':'thinking','thinking':'hm','signature':'s'}]}",
         "cannot take thinking blocks back", "messages[0].content[0].type"},
        {"{'role':'assistant','content':[{'type':'redacted_thinking','data':'x'}]}",
         "thinking blocks", "messages[0].content[0].type"},
        {"{'role':'assistant','content':[{'type':'server_tool_use','id':'s','name':'web_search','"
         "input':{}}]}",
         "cannot take server_tool_use blocks", "messages[0].content[0].type"},
        {"{'role':'assistant','content':[{'type':'image','source':{'type':'url','url':'http://"
         "x'}}]}",
         "cannot take image blocks", "messages[0].content[0].type"},
        {"{'role':'user','content':[{'type':'text','text':'a','citations':[{'type':'char_location'}"
         "]}]}",
         "unknown field", "messages[0].content[0].citations"},
        {"{'role':'user','content':[{'type':'text','text':5}]}", "must be a string",
         "messages[0].content[0].text"},
        {"{'role':'user','content':[{'type':'image','source':{'type':'file','file_id':'f'}}]}",
         "not files uploaded to Anthropic", "messages[0].content[0].source.type"},
        {"{'role':'user','content':[{'type':'image','source':'x'}]}", "must be an object",
         "messages[0].content[0].source"},
        {"{'role':'user','content':[{'type':'image','source':{'type':'base64','data':'AA'}}]}",
         "media_type and data must be strings", "messages[0].content[0].source"},
        {"{'role':'user','content':[{'type':'image','source':{'type':'url','url':'http://"
         "x','detail':'x'}}]}",
         "unknown field", "messages[0].content[0].source.detail"},
        {"{'role':'user','content':[{'type':'tool_result','tool_use_id':'t','content':[{'type':'"
         "image','source':"
         "{'type':'url','url':'http://x'}}]}]}",
         "takes text only in tool results", "messages[0].content[0].content[0].type"},
        {"{'role':'user','content':[{'type':'tool_result','tool_use_id':'t','content':5}]}",
         "must be a string or an array of blocks", "messages[0].content[0].content"},
        {"{'role':'user','content':[{'type':'tool_result','content':'x'}]}", "must be a string",
         "messages[0].content[0].tool_use_id"},
        {"{'role':'user','content':[{'type':'tool_result','tool_use_id':'t','is_error':'yes'}]}",
         "must be a boolean", "messages[0].content[0].is_error"},
        {"{'role':'assistant','content':[{'type':'tool_use','id':'t','name':'f','input':[1]}]}",
         "must be an object", "messages[0].content[0].input"},
        {"{'role':'assistant','content':[{'type':'tool_use','name':'f','input':{}}]}",
         "must be a string", "messages[0].content[0].id"},
        {"{'role':'assistant','content':[{'type':'tool_use','id':'t','input':{}}]}",
         "must be a string", "messages[0].content[0].name"},
    };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        char body[1024];
        snprintf(body, sizeof body, "{'model':'c','max_tokens':5,'messages':[%s]}",
                 msgs[i].messages);
        refuse_oai(body, msgs[i].msg, msgs[i].param);
    }
    refuse_oai("{'model':'c','max_tokens':5,'messages':[{'role':'assistant','content':[{'type':'"
               "tool_use','id':'t',"
               "'name':'f','input':{},'input':{'x':1}}]}]}",
               "appears twice", "messages[0].content[0].input");
    refuse_oai("{'model':'c','max_tokens':5,'messages':[{'role':'user','content':'q'}],'system':[{'"
               "type':'text',"
               "'text':'s','citations':[1]}]}",
               "unknown field", "system[0].citations");
}

/* ---- round trips ---- */

/* OpenAI -> Anthropic -> OpenAI -> Anthropic: the second Anthropic body is
 * the first (the meaning survived the trip), and the OpenAI body between
 * says what the client said. */
static void test_round_trip_openai(void **state)
{
    (void)state;
    const char *body =
        J("{'model':'fast','messages':[{'role':'system','content':'S "
          "\\u00e9'},{'role':'user','content':"
          "[{'type':'text','text':'look'},{'type':'image_url','image_url':{'url':'data:image/"
          "jpeg;base64,/9j/'}}]},"
          "{'role':'assistant','content':'ok','tool_calls':[{'id':'call_1','type':'function','"
          "function':{'name':"
          "'f','arguments':'{\\'a\\':[1,2]}'}}]},{'role':'tool','tool_call_id':'call_1','content':'"
          "done'},"
          "{'role':'assistant','content':'fine'}],'max_tokens':50,'temperature':0.7,'stop':'X','"
          "stream':true,"
          "'tools':[{'type':'function','function':{'name':'f','parameters':{'type':'object'}}}],"
          "'tool_choice':{'type':'function','function':{'name':'f'}},'parallel_tool_calls':false,'"
          "user':'me'}");
    result a1 = to_anth(body);
    assert_int_equal(a1.rc, TG_OK);
    result o1 = to_oai(a1.out.p);
    assert_int_equal(o1.rc, TG_OK);
    assert_string_equal(
        o1.out.p,
        J("{'model':'up','messages':[{'role':'system','content':'S "
          "\\u00e9'},{'role':'user','content':"
          "[{'type':'text','text':'look'},{'type':'image_url','image_url':{'url':"
          "'data:image/jpeg;base64,/9j/'}}]},{'role':'assistant','content':'ok','tool_calls':"
          "[{'id':'call_1','type':'function','function':{'name':'f','arguments':'{\\'a\\':[1,2]}'}}"
          "]},"
          "{'role':'tool','tool_call_id':'call_1','content':'done'},{'role':'assistant','content':"
          "'fine'}],'max_tokens':50,'stop':['X'],'temperature':0.7,'stream':true,'stream_options':"
          "{'include_usage':true},'tools':[{'type':'function','function':{'name':'f','parameters':"
          "{'type':'object'}}}],'tool_choice':{'type':'function','function':{'name':'f'}},"
          "'parallel_tool_calls':false,'user':'me'}"));
    result a2 = to_anth(o1.out.p);
    assert_int_equal(a2.rc, TG_OK);
    assert_string_equal(a2.out.p, a1.out.p);
    tg_buf_release(&a1.out);
    tg_buf_release(&o1.out);
    tg_buf_release(&a2.out);
}

/* Anthropic -> OpenAI -> Anthropic -> OpenAI: the same, the other way. */
static void test_round_trip_anthropic(void **state)
{
    (void)state;
    const char *body = J("{'model':'claude','max_tokens':64,'system':'You "
                         "help.','messages':[{'role':'user','content':'hi'},"
                         "{'role':'assistant','content':[{'type':'text','text':'calling'},{'type':'"
                         "tool_use','id':'toolu_9',"
                         "'name':'lookup','input':{'q':'x'}}]},{'role':'user','content':[{'type':'"
                         "tool_result','tool_use_id':"
                         "'toolu_9','content':[{'type':'text','text':'r1'},{'type':'text','text':'"
                         "r2'}]},{'type':'text','text':"
                         "'and?'},{'type':'image','source':{'type':'url','url':'https://x/"
                         "i.png'}}]}],'stop_sequences':['Z'],"
                         "'top_p':0.5,'tools':[{'name':'lookup','description':'d','input_schema':{'"
                         "type':'object'}}],"
                         "'tool_choice':{'type':'auto','disable_parallel_tool_use':true},'metadata'"
                         ":{'user_id':'u'}}");
    result o1 = to_oai(body);
    assert_int_equal(o1.rc, TG_OK);
    result a1 = to_anth(o1.out.p);
    assert_int_equal(a1.rc, TG_OK);
    assert_string_equal(
        a1.out.p,
        J("{'model':'up','max_tokens':64,'system':'You help.','messages':[{'role':'user','content':"
          "[{'type':'text','text':'hi'}]},{'role':'assistant','content':[{'type':'text','text':"
          "'calling'},{'type':'tool_use','id':'toolu_9','name':'lookup','input':{'q':'x'}}]},"
          "{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_9','content':"
          "[{'type':'text','text':'r1'},{'type':'text','text':'r2'}]},{'type':'text','text':'and?'}"
          ","
          "{'type':'image','source':{'type':'url','url':'https://x/i.png'}}]}],'stop_sequences':"
          "['Z'],'top_p':0.5,'tools':[{'name':'lookup','description':'d','input_schema':{'type':"
          "'object'}}],'tool_choice':{'type':'auto','disable_parallel_tool_use':true},"
          "'metadata':{'user_id':'u'}}"));
    result o2 = to_oai(a1.out.p);
    assert_int_equal(o2.rc, TG_OK);
    assert_string_equal(o2.out.p, o1.out.p);
    tg_buf_release(&o1.out);
    tg_buf_release(&a1.out);
    tg_buf_release(&o2.out);
}

/* ---- answers ---- */

static result resp_anth(const char *body, tg_usage *u)
{
    result r;
    tg_buf_init(&r.out, CAP);
    r.param.name[0] = '\0';
    r.rc = tg_translate_resp_to_anthropic(tg_str_c(body), TG_STR("fast"), &r.out, u, &r.err);
    if (!r.rc)
        assert_valid(&r.out);
    else
        assert_int_equal(r.out.n, 0);
    return r;
}

static result resp_oai(const char *body, tg_usage *u)
{
    result r;
    tg_buf_init(&r.out, CAP);
    r.param.name[0] = '\0';
    r.rc = tg_translate_resp_to_openai(tg_str_c(body), TG_STR("fa\"st"), 1700000000, &r.out, u,
                                       &r.err);
    if (!r.rc)
        assert_valid(&r.out);
    else
        assert_int_equal(r.out.n, 0);
    return r;
}

static void test_resp_to_anthropic(void **state)
{
    (void)state;
    tg_usage u;
    const char *body =
        J("{'id':'chatcmpl-1','object':'chat.completion','created':1,'model':'gpt','choices':[{"
          "'index':0,'message':{'role':'assistant','content':'Hi "
          "\\u00e9','refusal':null,'tool_calls':"
          "[{'id':'call_9','type':'function','function':{'name':'f','arguments':'{\\'a\\': [1, "
          "{\\'b\\': "
          "null}]}'}},{'id':'call_10','type':'function','function':{'name':'g','arguments':''}}]},"
          "'logprobs':null,'finish_reason':'tool_calls'}],'usage':{'prompt_tokens':100,"
          "'completion_tokens':20,'total_tokens':120,'prompt_tokens_details':{'cached_tokens':40}},"
          "'system_fingerprint':'fp'}");
    check(resp_anth(body, &u), body,
          J("{'id':'chatcmpl-1','type':'message','role':'assistant','model':'fast','content':[{'"
            "type':'text','text':"
            "'Hi \\u00e9'},{'type':'tool_use','id':'call_9','name':'f','input':{'a': [1, {'b': "
            "null}]}},"
            "{'type':'tool_use','id':'call_10','name':'g','input':{}}],'stop_reason':'tool_use',"
            "'stop_sequence':null,'usage':{'input_tokens':60,'cache_creation_input_tokens':0,"
            "'cache_read_input_tokens':40,'output_tokens':20}}"));
    assert_true(u.present);
    assert_int_equal(u.prompt, 100);
    assert_int_equal(u.cached, 40);
    assert_int_equal(u.completion, 20);
    assert_int_equal(u.total, 120);
    static const struct {
        const char *choice, *content, *stop;
    } cases[] = {
        {"{'message':{'role':'assistant','content':'x'},'finish_reason':'stop'}",
         "[{'type':'text','text':'x'}]", "end_turn"},
        {"{'message':{'role':'assistant','content':''},'finish_reason':'length'}", "[]",
         "max_tokens"},
        {"{'message':{'role':'assistant','content':null,'refusal':'I "
         "cannot.'},'finish_reason':'content_filter'}",
         "[{'type':'text','text':'I cannot.'}]", "refusal"},
        {"{'message':{'role':'assistant','content':null,'tool_calls':[{'id':'c','function':{'name':"
         "'f',"
         "'arguments':'{}'}}]},'finish_reason':'stop'}",
         "[{'type':'tool_use','id':'c','name':'f','input':{}}]", "tool_use"},
        {"{'message':{'role':'assistant','content':'x'}}", "[{'type':'text','text':'x'}]",
         "end_turn"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char b[1024], want[1024];
        snprintf(b, sizeof b, "{'choices':[%s]}", cases[i].choice);
        snprintf(want, sizeof want,
                 "{'id':'msg_tollgate','type':'message','role':'assistant','model':'fast',"
                 "'content':%s,'stop_reason':'%s','stop_sequence':null,'usage':{'input_tokens':0,"
                 "'cache_creation_input_tokens':0,'cache_read_input_tokens':0,'output_tokens':0}}",
                 cases[i].content, cases[i].stop);
        check(resp_anth(J(b), &u), J(b), J(want));
        assert_false(u.present);
    }
    static const struct {
        const char *body, *msg;
    } bad[] = {
        {"", "is not valid JSON"},
        {"{\"choices\":", "is not valid JSON"},
        {"[]", "is not a JSON object"},
        {"{}", "has no choices[0].message"},
        {"{'choices':[]}", "has no choices[0].message"},
        {"{'choices':[{'message':'x'}]}", "has no choices[0].message"},
        {"{'choices':[{'message':{'content':5}}]}", "content that is not a string"},
        {"{'choices':[{'message':{'content':[{'type':'text','text':'x'}]}}]}",
         "content that is not a string"},
        {"{'choices':[{'message':{'tool_calls':{}}}]}", "tool_calls that are not an array"},
        {"{'choices':[{'message':{'tool_calls':[{'function':{'name':'f','arguments':'{}'}}]}}]}",
         "without a string id"},
        {"{'choices':[{'message':{'tool_calls':[{'id':'c','function':{'name':'f','arguments':'[1]'}"
         "}]}}]}",
         "arguments that are not a JSON object"},
        {"{'choices':[{'message':{'tool_calls':[{'id':'c','function':{'name':'f','arguments':'{\\'"
         "a\\':'}}]}}]}",
         "arguments that are not a JSON object"},
        {"{'choices':[{'message':{'function_call':{'name':'f','arguments':'{}'}},'finish_reason':'"
         "function_call'}]}",
         "function_call or audio"},
        {"{'choices':[{'message':{'content':'x'},'finish_reason':'eos'}]}",
         "finish_reason the gateway does not know"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        result r = resp_anth(J(bad[i].body), &u);
        assert_int_equal(r.rc, TG_EINVAL);
        if (!strstr(r.err.msg, bad[i].msg)) fail_msg("case %zu: %s", i, r.err.msg);
        assert_non_null(strstr(r.err.msg, "the provider's answer"));
        tg_buf_release(&r.out);
    }
}

static void test_resp_to_openai(void **state)
{
    (void)state;
    tg_usage u;
    const char *body = J(
        "{'id':'msg_1','type':'message','role':'assistant','model':'claude','content':[{'type':"
        "'text','text':'Let me \\'check\\'.'},{'type':'tool_use','id':'toolu_1','name':'f','input':"
        "{'a':[1,{'b':null}],'s':'\\u00e9'}},{'type':'text','text':' "
        "done'}],'stop_reason':'tool_use',"
        "'stop_sequence':null,'usage':{'input_tokens':10,'cache_read_input_tokens':30,"
        "'cache_creation_input_tokens':5,'output_tokens':7}}");
    check(resp_oai(body, &u), body,
          J("{'id':'msg_1','object':'chat.completion','created':1700000000,'model':'fa\\'st','"
            "choices':[{'index':0,"
            "'message':{'role':'assistant','content':'Let me \\'check\\'. "
            "done','tool_calls':[{'id':'toolu_1',"
            "'type':'function','function':{'name':'f','arguments':'{\\'a\\':[1,{\\'b\\':null}],"
            "\\'s\\':\\'\\\\u00e9\\'}'}}],'refusal':null},'logprobs':null,'finish_reason':'tool_"
            "calls'}],"
            "'usage':{'prompt_tokens':45,'completion_tokens':7,'total_tokens':52,'prompt_tokens_"
            "details':"
            "{'cached_tokens':30}}}"));
    assert_true(u.present);
    assert_int_equal(u.prompt, 45);
    assert_int_equal(u.cached, 30);
    assert_int_equal(u.cache_write, 5);
    static const struct {
        const char *content, *stop, *message, *finish;
    } cases[] = {
        {"[{'type':'text','text':'x'}]", "end_turn", "'content':'x'", "stop"},
        {"[{'type':'text','text':'x'}]", "stop_sequence", "'content':'x'", "stop"},
        {"[{'type':'text','text':''}]", "max_tokens", "'content':''", "length"},
        {"[]", "refusal", "'content':null", "content_filter"},
        {"[]", "model_context_window_exceeded", "'content':null", "length"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char b[1024], want[1024];
        snprintf(b, sizeof b, "{'content':%s,'stop_reason':'%s'}", cases[i].content, cases[i].stop);
        snprintf(want, sizeof want,
                 "{'id':'chatcmpl-tollgate','object':'chat.completion','created':1700000000,"
                 "'model':'fa\\'st','choices':[{'index':0,'message':{'role':'assistant',%s,'"
                 "refusal':null},"
                 "'logprobs':null,'finish_reason':'%s'}],'usage':{'prompt_tokens':0,'completion_"
                 "tokens':0,"
                 "'total_tokens':0,'prompt_tokens_details':{'cached_tokens':0}}}",
                 cases[i].message, cases[i].finish);
        check(resp_oai(J(b), &u), J(b), J(want));
        assert_false(u.present);
    }
    static const struct {
        const char *body, *msg;
    } bad[] = {
        {"nope", "is not valid JSON"},
        {"\"x\"", "is not a JSON object"},
        {"{'type':'error','error':{}}", "is not a message"},
        {"{'stop_reason':'end_turn'}", "has no content array"},
        {"{'content':[{'type':'thinking','thinking':'hm'}],'stop_reason':'end_turn'}",
         "has a thinking block"},
        {"{'content':[{'type':'server_tool_use'}],'stop_reason':'end_turn'}",
         "server_tool_use block"},
        {"{'content':[{'text':'x'}],'stop_reason':'end_turn'}", "untyped block"},
        {"{'content':[{'type':'text','text':5}],'stop_reason':'end_turn'}",
         "text block without a string text"},
        {"{'content':[{'type':'tool_use','id':'t','name':'f','input':'{}'}],'stop_reason':'tool_"
         "use'}",
         "an object input"},
        {"{'content':[],'stop_reason':'pause_turn'}",
         "stop_reason an OpenAI chat completion cannot carry"},
        {"{'content':[],'stop_reason':null}", "stop_reason an OpenAI chat completion cannot carry"},
        {"{'content':[]}", "stop_reason"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        result r = resp_oai(J(bad[i].body), &u);
        assert_int_equal(r.rc, TG_EINVAL);
        if (!strstr(r.err.msg, bad[i].msg)) fail_msg("case %zu: %s", i, r.err.msg);
        tg_buf_release(&r.out);
    }
}

/* A completion -> message -> completion keeps text, tool calls, finish
 * and usage. */
static void test_resp_round_trip(void **state)
{
    (void)state;
    tg_usage u1, u2;
    const char *body =
        J("{'id':'c1','choices':[{'message':{'content':'a\\nb','tool_calls':[{'id':'x','function':"
          "{'name':'f','arguments':'{\\'k\\':true}'}}]},'finish_reason':'tool_calls'}],'usage':"
          "{'prompt_tokens':9,'completion_tokens':4,'total_tokens':13,'prompt_tokens_details':"
          "{'cached_tokens':3}}}");
    result m = resp_anth(body, &u1);
    assert_int_equal(m.rc, TG_OK);
    result c = resp_oai(m.out.p, &u2);
    assert_int_equal(c.rc, TG_OK);
    assert_string_equal(
        c.out.p,
        J("{'id':'c1','object':'chat.completion','created':1700000000,'model':'fa\\'st','choices':"
          "[{'index':0,'message':{'role':'assistant','content':'a\\nb','tool_calls':[{'id':'x','"
          "type':"
          "'function','function':{'name':'f','arguments':'{\\'k\\':true}'}}],'refusal':null},"
          "'logprobs':null,'finish_reason':'tool_calls'}],'usage':{'prompt_tokens':9,"
          "'completion_tokens':4,'total_tokens':13,'prompt_tokens_details':{'cached_tokens':3}}}"));
    assert_int_equal(u1.prompt, u2.prompt);
    assert_int_equal(u1.cached, u2.cached);
    assert_int_equal(u1.completion, u2.completion);
    tg_buf_release(&m.out);
    tg_buf_release(&c.out);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        bool to_anthropic;
        const char *body;
        int status;
        const char *want;
    } cases[] = {
        {true,
         "{'error':{'message':'bad "
         "thing','type':'invalid_request_error','param':'messages','code':null}}",
         400,
         "{'type':'error','error':{'type':'invalid_request_error','message':'messages: bad "
         "thing'}}"},
        {true,
         "{'error':{'message':'no key','type':'invalid_request_error','code':'invalid_api_key'}}",
         401, "{'type':'error','error':{'type':'authentication_error','message':'no key'}}"},
        {true, "{'error':{'message':'slow','type':'requests','param':null}}", 429,
         "{'type':'error','error':{'type':'rate_limit_error','message':'slow'}}"},
        {true, "{'error':{'message':'oops','type':'server_error'}}", 500,
         "{'type':'error','error':{'type':'api_error','message':'oops'}}"},
        {true, "{'error':{'message':'busy'}}", 503,
         "{'type':'error','error':{'type':'overloaded_error','message':'busy'}}"},
        {true, "{'error':{'message':'quota','type':'insufficient_quota'}}", 200,
         "{'type':'error','error':{'type':'billing_error','message':'quota'}}"},
        {true, "{'error':{'message':'m','type':'server_error'}}", 0,
         "{'type':'error','error':{'type':'api_error','message':'m'}}"},
        {true, "{'error':'plain text \\u00e9'}", 404,
         "{'type':'error','error':{'type':'not_found_error','message':"
         "'plain text \\u00e9'}}"},
        {true, "{'object':'error','message':'vllm says','type':'BadRequestError','code':400}", 400,
         "{'type':'error','error':{'type':'invalid_request_error','message':'vllm says'}}"},
        {true, "<html>502 Bad Gateway</html>", 502,
         "{'type':'error','error':{'type':'api_error','message':'the provider failed (HTTP status "
         "502) without an "
         "error message'}}"},
        {true, "", 413,
         "{'type':'error','error':{'type':'request_too_large','message':'the provider failed (HTTP "
         "status 413) without an error message'}}"},
        {false, "{'type':'error','error':{'type':'overloaded_error','message':'Overloaded'}}", 529,
         "{'error':{'message':'Overloaded','type':'server_error','param':null,'code':'overloaded_"
         "error'}}"},
        {false,
         "{'type':'error','error':{'type':'invalid_request_error','message':'messages.0: bad'}}",
         400,
         "{'error':{'message':'messages.0: bad','type':'invalid_request_error','param':null,'code':"
         "'invalid_request_error'}}"},
        {false, "{'type':'error','error':{'type':'authentication_error','message':'x'}}", 401,
         "{'error':{'message':'x','type':'authentication_error','param':null,'code':'"
         "authentication_error'}}"},
        {false, "{'type':'error','error':{'type':'permission_error','message':'x'}}", 403,
         "{'error':{'message':'x','type':'permission_error','param':null,'code':'permission_error'}"
         "}"},
        {false, "{'type':'error','error':{'type':'not_found_error','message':'x'}}", 404,
         "{'error':{'message':'x','type':'not_found_error','param':null,'code':'not_found_error'}"
         "}"},
        {false, "{'type':'error','error':{'type':'request_too_large','message':'x'}}", 413,
         "{'error':{'message':'x','type':'invalid_request_error','param':null,'code':'request_too_"
         "large'}}"},
        {false, "{'type':'error','error':{'type':'rate_limit_error','message':'x'}}", 429,
         "{'error':{'message':'x','type':'rate_limit_error','param':null,'code':'rate_limit_error'}"
         "}"},
        {false, "{'type':'error','error':{'type':'billing_error','message':'x'}}", 402,
         "{'error':{'message':'x','type':'insufficient_quota','param':null,'code':'billing_error'}"
         "}"},
        {false, "{'type':'error','error':{'type':'api_error','message':'x'}}", 500,
         "{'error':{'message':'x','type':'server_error','param':null,'code':'api_error'}}"},
        {false, "{'type':'error','error':{'type':'rate_limit_error','message':'x'}}", 200,
         "{'error':{'message':'x','type':'rate_limit_error','param':null,'code':'rate_limit_error'}"
         "}"},
        {false, "{'type':'error','error':{'type':'new_kind','message':'x'}}", 0,
         "{'error':{'message':'x','type':'server_error','param':null,'code':'new_kind'}}"},
        {false, "not json", 500,
         "{'error':{'message':'the provider failed (HTTP status 500) without an error "
         "message','type':'server_error','param':null,'code':null}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_buf out;
        tg_buf_init(&out, CAP);
        const char *body = J(cases[i].body);
        int rc = cases[i].to_anthropic
                     ? tg_translate_error_to_anthropic(tg_str_c(body), cases[i].status, &out)
                     : tg_translate_error_to_openai(tg_str_c(body), cases[i].status, &out);
        assert_int_equal(rc, TG_OK);
        assert_valid(&out);
        if (strcmp(out.p, J(cases[i].want))) fail_msg("case %zu: %s", i, out.p);
        tg_buf_release(&out);
    }
}

/* ---- bounds ---- */

static void test_bounds(void **state)
{
    (void)state;
    /* a cap that is too small: TG_ETOOBIG, and the buffer as it was */
    const char *body = J("{'model':'m','messages':[{'role':'user','content':'hello there'}]}");
    tg_openai_req req;
    tg_buf scratch, out;
    tg_errmsg err;
    tg_translate_param param;
    const char *pp;
    tg_buf_init(&scratch, 64);
    assert_int_equal(tg_openai_read_request(tg_str_c(body), TG_EP_CHAT, &scratch, &req, &err, &pp),
                     TG_OK);
    tg_buf_init(&out, 40);
    assert_int_equal(tg_buf_add_lit(&out, "kept"), TG_OK);
    assert_int_equal(tg_translate_req_to_anthropic(&req, &off, 16, &out, &err, &param), TG_ETOOBIG);
    assert_string_equal(out.p, "kept");
    /* a refusal leaves it as it was too */
    const char *late = J("{'model':'m','messages':[{'role':'user','content':'hello'},{'role':'bot',"
                         "'content':'x'}]}");
    assert_int_equal(tg_openai_read_request(tg_str_c(late), TG_EP_CHAT, &scratch, &req, &err, &pp),
                     TG_OK);
    out.max = CAP;
    assert_int_equal(tg_translate_req_to_anthropic(&req, &off, 16, &out, &err, &param), TG_EINVAL);
    assert_string_equal(out.p, "kept");
    tg_buf_release(&out);
    tg_buf_release(&scratch);

    /* growth: the worst case for escaping (a tool input of quotes and
     * backslashes becomes a JSON string) stays within twice the input plus
     * the wrapping */
    char big[8192];
    size_t n = (size_t)snprintf(
        big, sizeof big,
        "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":"
        "\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\","
        "\"input\":{\"k\":\"");
    while (n < 8000)
        big[n++] = '\\', big[n++] = '"';
    memcpy(big + n, "\"}}]}]}", 8);
    n += 7;
    result r = to_oai(big);
    assert_int_equal(r.rc, TG_OK);
    assert_true(r.out.n <= 2 * n + 256);
    tg_buf_release(&r.out);
    /* many tiny messages: a constant per message */
    static char many[64 * 1024];
    size_t m = (size_t)snprintf(many, sizeof many, "{\"model\":\"m\",\"messages\":[");
    for (int i = 0; i < 1000; i++)
        m += (size_t)snprintf(many + m, sizeof many - m, "%s{\"role\":\"%s\",\"content\":\"x\"}",
                              i ? "," : "", i % 2 ? "assistant" : "user");
    m += (size_t)snprintf(many + m, sizeof many - m, "]}");
    result a = to_anth(many);
    assert_int_equal(a.rc, TG_OK);
    assert_true(a.out.n <= 3 * m);
    result o = to_oai(a.out.p);
    assert_int_equal(o.rc, TG_OK);
    assert_true(o.out.n <= 3 * a.out.n);
    tg_buf_release(&a.out);
    tg_buf_release(&o.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anth_full),
        cmocka_unit_test(test_anth_system_and_roles),
        cmocka_unit_test(test_anth_tools),
        cmocka_unit_test(test_anth_accepted),
        cmocka_unit_test(test_anth_refusals),
        cmocka_unit_test(test_anth_odd),
        cmocka_unit_test(test_oai_full),
        cmocka_unit_test(test_oai_blocks),
        cmocka_unit_test(test_oai_refusals),
        cmocka_unit_test(test_round_trip_openai),
        cmocka_unit_test(test_round_trip_anthropic),
        cmocka_unit_test(test_resp_to_anthropic),
        cmocka_unit_test(test_resp_to_openai),
        cmocka_unit_test(test_resp_round_trip),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
