/* Commit record codec: round trip, every truncation, every bit flip, field
 * validation, golden layout. */
#include "test.h"
#include "core/commit_record.h"
#include "util/util.h"

#include <string.h>

static void make(struct quire_commit *c, struct quire_commit_segment *segs, uint32_t n) {
  memset(c, 0, sizeof *c);
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &c->vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_CLIENT, &c->client_id));
  CHECK_OK(quire_gid_new(QUIRE_GID_COMMIT, &c->commit_id));
  c->lsn = 42;
  c->checkpoint_lsn = 7;
  c->timestamp_ms = 1763734000000ull;
  c->page_count = 1000;
  static const uint8_t graft[] = "splinter-bytes";
  for (uint32_t i = 0; i < n; i++) {
    CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &segs[i].sid));
    segs[i].graft = graft;
    segs[i].graft_len = (uint32_t)(i % 3 == 2 ? 0 : sizeof graft - 1 - i % 5);
  }
  c->nsegments = n;
  c->segments = segs;
}

static void test_roundtrip(void) {
  struct quire_commit_segment segs[5];
  struct quire_commit c, d;
  for (uint32_t n = 0; n <= 5; n++) {
    make(&c, segs, n);
    quire_buf b;
    quire__buf_init(&b, 1 << 20);
    CHECK_OK(quire__commit_encode(&c, &b));
    CHECK_OK(quire__commit_decode(b.data, b.len, &d));
    CHECK(quire_gid_cmp(&c.vid, &d.vid) == 0 && quire_gid_cmp(&c.commit_id, &d.commit_id) == 0);
    CHECK(quire_gid_cmp(&c.client_id, &d.client_id) == 0);
    CHECK(d.lsn == 42 && d.checkpoint_lsn == 7 && d.page_count == 1000 && d.nsegments == n);
    CHECK(d.timestamp_ms == c.timestamp_ms);
    for (uint32_t i = 0; i < n; i++) {
      CHECK(quire_gid_cmp(&segs[i].sid, &d.segments[i].sid) == 0);
      CHECK(d.segments[i].graft_len == segs[i].graft_len);
      CHECK(memcmp(d.segments[i].graft, segs[i].graft, segs[i].graft_len) == 0);
    }
    /* Golden layout of the header. */
    CHECK(memcmp(b.data, "QCMT", 4) == 0 && b.data[4] == 2 && b.data[5] == 0);
    CHECK(memcmp(b.data + 8, c.vid.b, 16) == 0 && ld_le64(b.data + 56) == 42);
    CHECK(ld_le32(b.data + 84) == n && ld_le64(b.data + b.len - 8) == quire__xxh3(b.data, b.len - 8));
    quire__commit_clear(&d);
    /* Every truncation and every single-bit flip is rejected. */
    for (size_t k = 0; k < b.len; k++) CHECK(quire__commit_decode(b.data, k, &d) == QUIRE_ECORRUPT);
    for (size_t k = 0; k < b.len * 8; k += (n > 2 ? 7 : 1)) {
      b.data[k / 8] ^= (uint8_t)(1u << (k % 8));
      int rc = quire__commit_decode(b.data, b.len, &d);
      CHECK(rc == QUIRE_ECORRUPT || rc == QUIRE_EVERSION);
      b.data[k / 8] ^= (uint8_t)(1u << (k % 8));
    }
    quire__buf_free(&b);
  }
}

/* Fields that pass the checksum but break a rule. */
static void test_bad_fields(void) {
  struct quire_commit_segment segs[2];
  struct quire_commit c, d;
  quire_buf b;
  quire__buf_init(&b, 1 << 20);
  make(&c, segs, 2);
  c.lsn = 0;
  CHECK_RC(quire__commit_encode(&c, &b), QUIRE_EINVAL);
  make(&c, segs, 2);
  c.checkpoint_lsn = 43;
  CHECK_RC(quire__commit_encode(&c, &b), QUIRE_EINVAL);
  make(&c, segs, 2);
  segs[1].sid.b[0] = QUIRE_GID_VOLUME;
  CHECK_RC(quire__commit_encode(&c, &b), QUIRE_EINVAL);
  make(&c, segs, 2);
  c.client_id = c.vid;
  CHECK_RC(quire__commit_encode(&c, &b), QUIRE_EINVAL);
  /* Re-seal a tampered record with a valid checksum: still rejected. */
  make(&c, segs, 2);
  CHECK_OK(quire__commit_encode(&c, &b));
  struct {
    size_t off;
    uint8_t val;
    int want;
  } cases[] = {{4, 3, QUIRE_EVERSION},     {4, 0, QUIRE_EVERSION},  {6, 2, QUIRE_ECORRUPT},
               {6, 1, QUIRE_ECORRUPT} /* rewrite with checkpoint 7 != lsn 42 */,  {8, 0x11, QUIRE_ECORRUPT},
               {84, 3, QUIRE_ECORRUPT},    {84, 1, QUIRE_ECORRUPT}, {88, 0x80, QUIRE_ECORRUPT},
               {104, 0xff, QUIRE_ECORRUPT}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t *copy = malloc(b.len);
    memcpy(copy, b.data, b.len);
    copy[cases[i].off] = cases[i].val;
    st_le64(copy + b.len - 8, quire__xxh3(copy, b.len - 8));
    CHECKF(quire__commit_decode(copy, b.len, &d) == cases[i].want, "case %zu: %s", i, quire_errmsg());
    free(copy);
  }
  /* Appending a stray byte is rejected too. */
  uint8_t *longer = malloc(b.len + 1);
  memcpy(longer, b.data, b.len - 8);
  longer[b.len - 8] = 0;
  st_le64(longer + b.len - 7, quire__xxh3(longer, b.len - 7));
  CHECK_RC(quire__commit_decode(longer, b.len + 1, &d), QUIRE_ECORRUPT);
  free(longer);
  quire__buf_free(&b);
  char key[64];
  make(&c, segs, 0);
  quire__commit_key(&c.vid, 0x2a, key);
  CHECK(strncmp(key, "volumes/", 8) == 0 && strcmp(key + 8 + 22, "/log/000000000000002a") == 0);
}

/* The rewrite flag: only on a checkpoint past lsn 1; round trips. */
static void test_rewrite(void) {
  struct quire_commit_segment segs[2];
  struct quire_commit c, d;
  quire_buf b;
  quire__buf_init(&b, 1 << 20);
  make(&c, segs, 2);
  c.flags = QUIRE_COMMIT_F_REWRITE;
  CHECK_RC(quire__commit_encode(&c, &b), QUIRE_EINVAL); /* checkpoint 7 != lsn 42 */
  c.flags = 0x2;
  CHECK_RC(quire__commit_encode(&c, &b), QUIRE_EINVAL);
  c.flags = QUIRE_COMMIT_F_REWRITE;
  c.lsn = c.checkpoint_lsn = 1;
  CHECK_RC(quire__commit_encode(&c, &b), QUIRE_EINVAL); /* nothing before lsn 1 to rewrite */
  c.lsn = c.checkpoint_lsn = 42;
  CHECK_OK(quire__commit_encode(&c, &b));
  CHECK(ld_le16(b.data + 6) == 1 && ld_le64(b.data + 64) == 42);
  CHECK_OK(quire__commit_decode(b.data, b.len, &d));
  CHECK(d.flags == QUIRE_COMMIT_F_REWRITE && d.checkpoint_lsn == 42 && d.nsegments == 2);
  quire__commit_clear(&d);
  /* A fork's first commit: a checkpoint at lsn 1, not a rewrite. */
  quire__buf_reset(&b);
  c.flags = 0;
  c.lsn = c.checkpoint_lsn = 1;
  CHECK_OK(quire__commit_encode(&c, &b));
  CHECK_OK(quire__commit_decode(b.data, b.len, &d));
  CHECK(d.flags == 0 && d.checkpoint_lsn == 1);
  quire__commit_clear(&d);
  quire__buf_free(&b);
}

/* Golden bytes of both versions: a version-1 record written before
 * checkpoints (checkpoint lsn 0, flags 0) still decodes, and this build's
 * version-2 encoding of a rewrite is exactly these bytes. */
static void golden(uint8_t *p, unsigned version, unsigned flags, uint64_t lsn, uint64_t ckpt) {
  memset(p, 0, 96);
  memcpy(p, "QCMT", 4);
  st_le16(p + 4, (uint16_t)version);
  st_le16(p + 6, (uint16_t)flags);
  p[8] = QUIRE_GID_VOLUME;
  p[24] = QUIRE_GID_CLIENT;
  p[40] = QUIRE_GID_COMMIT;
  for (int i = 1; i < 16; i++) p[8 + i] = (uint8_t)i, p[24 + i] = (uint8_t)(0x20 + i), p[40 + i] = (uint8_t)(0x40 + i);
  st_le64(p + 56, lsn);
  st_le64(p + 64, ckpt);
  st_le64(p + 72, 1763734000000ull);
  st_le32(p + 80, 1000);
  st_le64(p + 88, quire__xxh3(p, 88));
}

static void test_golden_versions(void) {
  uint8_t v1[96], v2[96];
  struct quire_commit d;
  golden(v1, 1, 0, 42, 0);
  CHECK_OK(quire__commit_decode(v1, sizeof v1, &d));
  CHECK(d.lsn == 42 && d.checkpoint_lsn == 0 && d.flags == 0 && d.page_count == 1000 && d.nsegments == 0);
  CHECK(d.vid.b[0] == QUIRE_GID_VOLUME && d.vid.b[15] == 15 && d.commit_id.b[15] == 0x4f);
  quire__commit_clear(&d);
  /* Version 1 has no flags. */
  golden(v1, 1, 1, 42, 42);
  CHECK_RC(quire__commit_decode(v1, sizeof v1, &d), QUIRE_ECORRUPT);
  /* Version 2: decode, then re-encode byte for byte. */
  golden(v2, 2, 1, 42, 42);
  CHECK_OK(quire__commit_decode(v2, sizeof v2, &d));
  CHECK(d.flags == QUIRE_COMMIT_F_REWRITE && d.checkpoint_lsn == 42);
  quire_buf b;
  quire__buf_init(&b, 1 << 20);
  CHECK_OK(quire__commit_encode(&d, &b));
  CHECK(b.len == sizeof v2 && memcmp(b.data, v2, sizeof v2) == 0);
  quire__buf_free(&b);
  quire__commit_clear(&d);
  /* A version-1 record re-encodes as version 2 with the same fields. */
  golden(v1, 1, 0, 42, 0);
  golden(v2, 2, 0, 42, 0);
  CHECK_OK(quire__commit_decode(v1, sizeof v1, &d));
  quire__buf_init(&b, 1 << 20);
  CHECK_OK(quire__commit_encode(&d, &b));
  CHECK(b.len == sizeof v2 && memcmp(b.data, v2, sizeof v2) == 0);
  quire__buf_free(&b);
  quire__commit_clear(&d);
}

static void test_oom(void) {
  struct quire_commit_segment segs[3];
  struct quire_commit c, d;
  make(&c, segs, 3);
  quire_buf b;
  quire__buf_init(&b, 1 << 20);
  CHECK_OK(quire__commit_encode(&c, &b));
  quire_test_alloc_fail_at(1, 0);
  CHECK_RC(quire__commit_decode(b.data, b.len, &d), QUIRE_ENOMEM);
  quire_test_alloc_fail_at(0, 0);
  quire__buf_free(&b);
}

int main(void) {
  test_seed();
  test_roundtrip();
  test_bad_fields();
  test_rewrite();
  test_golden_versions();
  test_oom();
  return test_done("commit_record");
}
