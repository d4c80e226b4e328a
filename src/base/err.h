/* Result codes shared by every module.
 *
 * Functions that can fail return an int: TG_OK (0) on success, one of the
 * negative codes below otherwise, so `if (rc) goto out;` reads the same
 * everywhere. Messages a person can act on travel separately (tg_errmsg). */
#ifndef TG_BASE_ERR_H
#define TG_BASE_ERR_H

enum {
    TG_OK = 0,
    TG_ENOMEM = -1,   /* allocation failed */
    TG_ETOOBIG = -2,  /* a capped buffer would exceed its cap */
    TG_EINVAL = -3,   /* malformed input */
    TG_ENOTFOUND = -4,
    TG_EIO = -5,      /* a system call failed; errno says why */
};

/* A fixed-size message buffer for errors that reach a person. */
typedef struct {
    char msg[256];
} tg_errmsg;

/* printf-style: fills e->msg (truncating) and returns TG_EINVAL. Marked
 * cold, as tg_log is: the compiler then moves the branches that end in
 * an error out of the hot code, so the request path's code takes fewer
 * instruction-cache lines. */
int tg_errmsg_set(tg_errmsg *e, const char *fmt, ...) __attribute__((format(printf, 2, 3), cold));

#endif
