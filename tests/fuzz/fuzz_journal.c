/* libFuzzer target: the journal's readers (meter/codec.c) on arbitrary
 * bytes, as a torn or tampered segment would give them.
 *
 * The first byte picks the shape of the rest:
 *   odd:  the bytes are a segment, read with tg_journal_scan;
 *   even: the bytes are pieces [u16 length][bytes], each decoded with
 *         tg_record_decode and also framed with a correct length and
 *         CRC-32C into a segment for tg_journal_scan, so the fuzzer
 *         reaches the decoder through the frame reader without having
 *         to forge checksums.
 * Checks: every record either reader accepts passes tg_record_check
 * (which aborts otherwise) and encodes back to exactly the bytes it came
 * from; the scan never claims more bytes than it had, and claims all of
 * them when it reports success; the marks encode reports point at the
 * record's time, app, customer and plan (tg_record_view_at). And
 * tg_record_view_at reads each piece in place with marks taken from the
 * piece's first bytes, whatever they are: it refuses them or gives strings
 * inside the piece, and never reads past it. */
#include "meter/journal.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static tg_buf reenc;

static bool same(tg_str a, const char *b)
{
    return a.n == strlen(b) && memcmp(a.p, b, a.n) == 0;
}

static void check_record(const tg_usage_rec *r, bool intent, const uint8_t *p, size_t n)
{
    tg_record_check(r);
    tg_buf_clear(&reenc);
    tg_record_marks m;
    int rc = tg_record_encode(r, intent, &reenc, &m);
    assert(rc == 0);
    /* a current payload encodes back to its own bytes; an older version
     * (2: no credits; 3: no attempts, asked_cost nor attempt flag) to the
     * current one, which decodes to the same record */
    assert(!p || p[0] != TG_RECORD_VERSION || (reenc.n == n && memcmp(reenc.p, p, n) == 0));
    if (p && p[0] != TG_RECORD_VERSION) {
        tg_usage_rec back;
        bool bi;
        assert(tg_record_decode((const uint8_t *)reenc.p, reenc.n, &back, &bi) == 0 && bi == intent);
        assert(memcmp(&back, r, sizeof back) == 0);
    }
    tg_record_view v;
    rc = tg_record_view_at((const uint8_t *)reenc.p, reenc.n, &m, &v);
    assert(rc == 0 && memcmp(v.id, r->id, TG_RECORD_ID_LEN) == 0 && v.t_start_ms == r->t_start_ms);
    assert(same(v.app, r->tags.app) && same(v.customer, r->tags.customer) &&
           same(v.plan, r->tags.plan) && v.intent == intent && v.credits == r->credits &&
           v.charge == r->charge);
}

/* p[0..n) in place, with marks from its first bytes. */
static void check_view(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1); /* exactly n bytes: ASan catches reads past them */
    memcpy(copy, p, n);
    tg_record_marks m = {0};
    if (n >= 6)
        m = (tg_record_marks){.app = (uint16_t)(p[0] | p[1] << 8),
                              .customer = (uint16_t)(p[2] | p[3] << 8),
                              .plan = (uint16_t)(p[4] | p[5] << 8)};
    tg_record_view v;
    int rc = tg_record_view_at(copy, n, &m, &v);
    assert(rc == 0 || rc == TG_EINVAL);
    if (rc == 0) {
        const char *end = (const char *)copy + n;
        assert(v.app.p + v.app.n <= end && v.customer.p + v.customer.n <= end &&
               v.plan.p + v.plan.n <= end);
    }
    free(copy);
}

static int on_frame(void *ud, const tg_usage_rec *r, bool intent)
{
    (*(size_t *)ud)++;
    check_record(r, intent, NULL, 0);
    return 0;
}

static void scan(const uint8_t *p, size_t n, size_t max_records)
{
    size_t used = 0, records = 0;
    int rc = tg_journal_scan(p, n, on_frame, &records, &used);
    assert(used <= n);
    assert(rc == 0 || rc == TG_EINVAL);
    assert(rc != 0 || used == n);
    assert(records <= max_records);
}

static void frame_into(tg_buf *seg, const uint8_t *p, uint16_t len)
{
    uint32_t hdr[2] = {len, tg_crc32c(0, p, len)};
    uint8_t h[TG_JOURNAL_FRAME_HDR];
    for (int i = 0; i < 8; i++) h[i] = (uint8_t)(hdr[i / 4] >> (8 * (i % 4)));
    tg_buf_append(seg, h, sizeof h);
    tg_buf_append(seg, p, len);
}

static void pieces(const uint8_t *p, size_t n)
{
    tg_buf seg;
    tg_buf_init(&seg, 1 << 22);
    size_t count = 0;
    while (n >= 2) {
        uint16_t len = (uint16_t)(p[0] | p[1] << 8);
        p += 2;
        n -= 2;
        if (len > n) len = (uint16_t)n;
        tg_usage_rec r;
        bool intent = false;
        bool ok = tg_record_decode(p, len, &r, &intent) == 0;
        if (ok) check_record(&r, intent, p, len);
        check_view(p, len);
        frame_into(&seg, p, len);
        count++;
        p += len;
        n -= len;
    }
    scan((const uint8_t *)seg.p, seg.n, count);
    if (seg.n > 3) scan((const uint8_t *)seg.p, seg.n - 3, count); /* a torn tail */
    tg_buf_release(&seg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!reenc.max) tg_buf_init(&reenc, TG_RECORD_MAX_LEN);
    if (data[0] & 1) scan(data + 1, size - 1, size / TG_RECORD_MIN_LEN);
    else pieces(data + 1, size - 1);
    return 0;
}
