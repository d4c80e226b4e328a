/* Key hashing and the auth gate: SHA-256 of the presented key, Bearer and
 * api-key headers, constant-time lookup among configured hashes. */
#include "base/hash.h"
#include "gate/auth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static void test_sha256_known(void **state)
{
    (void)state;
    char hex[TG_SHA256_HEX_LEN + 1];
    tg_sha256_hex(TG_STR(""), hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    tg_sha256_hex(TG_STR("abc"), hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    uint8_t bin[TG_SHA256_LEN], back[TG_SHA256_LEN];
    tg_sha256(TG_STR("abc"), bin);
    assert_int_equal(tg_hex_decode32(tg_str_c(hex), back), 0);
    assert_memory_equal(bin, back, TG_SHA256_LEN);
    assert_int_equal(tg_hex_decode32(TG_STR("zz"), back), TG_EINVAL);
    assert_true(tg_ct_equal(bin, back, TG_SHA256_LEN));
    back[31] ^= 1;
    assert_false(tg_ct_equal(bin, back, TG_SHA256_LEN));
}

static tg_req req_with(const char *name, const char *value)
{
    tg_req r;
    memset(&r, 0, sizeof r);
    if (name) {
        r.headers[0] = (tg_header){tg_str_c(name), tg_str_c(value)};
        r.nheaders = 1;
    }
    return r;
}

static void test_gate(void **state)
{
    (void)state;
    tg_key keys[2] = {{.id = "demo"}, {.id = "admin", .admin = true}};
    tg_sha256(TG_STR("sk-tollgate-demo"), keys[0].hash);
    tg_sha256(TG_STR("sk-tollgate-admin"), keys[1].hash);
    tg_config cfg = {.keys = keys, .nkeys = 2};
    const tg_key *k = NULL;

    tg_req r = req_with("Authorization", "Bearer sk-tollgate-demo");
    assert_int_equal(tg_auth_check(&cfg, &r, &k), TG_AUTH_OK);
    assert_string_equal(k->id, "demo");
    r = req_with("authorization", "bearer   sk-tollgate-admin  ");
    assert_int_equal(tg_auth_check(&cfg, &r, &k), TG_AUTH_OK);
    assert_string_equal(k->id, "admin");
    r = req_with("api-key", "sk-tollgate-demo");
    assert_int_equal(tg_auth_check(&cfg, &r, &k), TG_AUTH_OK);
    r = req_with("Authorization", "Bearer sk-tollgate-dem");
    assert_int_equal(tg_auth_check(&cfg, &r, &k), TG_AUTH_INVALID);
    r = req_with("Authorization", "Basic c2stdG9sbGdhdGUtZGVtbw==");
    assert_int_equal(tg_auth_check(&cfg, &r, &k), TG_AUTH_MISSING);
    r = req_with("Authorization", "Bearer ");
    assert_int_equal(tg_auth_check(&cfg, &r, &k), TG_AUTH_MISSING);
    r = req_with(NULL, NULL);
    assert_int_equal(tg_auth_check(&cfg, &r, &k), TG_AUTH_MISSING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known),
        cmocka_unit_test(test_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
