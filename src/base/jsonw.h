/* JSON writing: escaping strings into a buffer. Everything tollgate writes as
 * JSON (errors, logs, stats, model lists) goes through these so that a byte
 * from a client can never break out of a string. */
#ifndef TG_BASE_JSONW_H
#define TG_BASE_JSONW_H

#include "base/buf.h"

/* Appends s as a quoted JSON string; bytes below 0x20, '"' and '\\' are
 * escaped, invalid UTF-8 bytes become U+FFFD. */
int tg_jsonw_str(tg_buf *b, tg_str s);

#endif
