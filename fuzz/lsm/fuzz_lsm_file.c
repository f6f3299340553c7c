/*
 * fuzz/lsm/fuzz_lsm_file.c — opens arbitrary bytes as an LSM database file
 * (in memory, read-only) and reads everything: full scans both ways, seeks,
 * point gets, value range reads, `lsm check`. Before opening, the harness
 * recomputes the header-slot and page checksums so the fuzzer reaches the
 * page parsers instead of stopping at a checksum. Any outcome but a crash,
 * a hang or a sanitizer report is fine.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tests/testlib/lsm_faultfs.h"
#include "lsm/lsm_int.h"

static void fix_checksums(uint8_t *img, size_t len) {
  if (len < 2 * LSM_SLOT_SIZE) return;
  uint32_t pgsz = 4096;
  for (int s = 0; s < 2; s++) {
    uint8_t *slot = img + s * LSM_SLOT_SIZE;
    if (memcmp(slot, LSM_MAGIC, 8) != 0) continue;
    st_le64(slot + LSM_SLOT_SIZE - 8, quire__xxh3(slot, LSM_SLOT_SIZE - 8));
    uint32_t p = ld_le32(slot + 12);
    if (p >= 4096 && p <= 65536 && !(p & (p - 1))) pgsz = p;
  }
  for (size_t pg = 2; (size_t)pg * pgsz <= len; pg++) {
    uint8_t *page = img + (pg - 1) * pgsz;
    st_le64(page + pgsz - 8, quire__xxh3_seeded(page, pgsz - 8, pg));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (8u << 20)) return 0;
  quire__log_set_level(-1);
  uint8_t *img = malloc(size ? size : 1);
  if (size) memcpy(img, data, size);
  fix_checksums(img, size);
  faultfs fs;
  ffs_init(&fs, img, size);
  free(img);
  lsm_options o;
  lsm_options_init(&o);
  o.read_only = 1;
  o.sync_mode = LSM_SYNC_OFF;
  o.cache_bytes = 64 * 1024;
  o.vfs = &fs.vfs;
  lsm_db *db;
  if (lsm_open("fuzz.db", &o, &db) == 0) {
    lsm_cursor *c;
    if (lsm_cursor_open(db, &c) == 0) {
      int n = 0;
      uint8_t buf[64];
      for (int rc = lsm_cursor_first(c); rc == 0 && n < 100000; rc = lsm_cursor_next(c), n++) {
        const void *k, *v;
        size_t kl, vl, got;
        if (lsm_cursor_key(c, &k, &kl) || lsm_cursor_value(c, &v, &vl)) break;
        (void)lsm_cursor_value_read(c, vl / 2, buf, sizeof buf, &got);
      }
      n = 0;
      for (int rc = lsm_cursor_last(c); rc == 0 && n < 100000; rc = lsm_cursor_prev(c), n++) {
      }
      static const char *probes[] = {"", "a", "key", "k\xff", "zzzz"};
      for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        for (int op = LSM_SEEK_EQ; op <= LSM_SEEK_GE; op++) {
          if (lsm_cursor_seek(c, probes[i], strlen(probes[i]), op) == 0) (void)lsm_cursor_next(c);
        }
        lsm_value v;
        if (lsm_get(db, probes[i], strlen(probes[i]), &v) == 0) lsm_value_release(&v);
      }
      lsm_cursor_close(c);
    }
    lsm_check_counts cnt;
    (void)lsm__check(db, NULL, NULL, &cnt);
    lsm_close(db);
  }
  ffs_free(&fs);
  return 0;
}
