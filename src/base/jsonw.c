/* JSON string escaping; see jsonw.h. */
#include "base/jsonw.h"
#include "base/err.h"

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) len = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

int tg_jsonw_str(tg_buf *b, tg_str s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.p;
    int rc = tg_buf_add_char(b, '"');
    size_t run = 0; /* start of the pending run of bytes copied as they are */
    for (size_t i = 0; !rc && i < s.n;) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : utf8_len(p + i, s.n - i);
        if (len > 1 || (len == 1 && c >= 0x20 && c != '"' && c != '\\')) {
            i += len;
            continue;
        }
        rc = tg_buf_append(b, p + run, i - run);
        if (rc) break;
        if (len == 0) {
            rc = tg_buf_add_lit(b, "\\ufffd");
        } else if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = tg_buf_append(b, esc, 2);
        } else if (c == '\n') {
            rc = tg_buf_add_lit(b, "\\n");
        } else if (c == '\r') {
            rc = tg_buf_add_lit(b, "\\r");
        } else if (c == '\t') {
            rc = tg_buf_add_lit(b, "\\t");
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = tg_buf_append(b, esc, 6);
        }
        i += len ? len : 1;
        run = i;
    }
    if (!rc) rc = tg_buf_append(b, p + run, s.n - run);
    if (!rc) rc = tg_buf_add_char(b, '"');
    return rc;
}
