/*
 * Write receipts (core/receipt.h): a receipt checks only for the key,
 * volume, segment and graft it was made for; key files are created once
 * (mode 0600), reloaded the same, and malformed ones are refused.
 */
#include "test.h"
#include "core/receipt.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int main(void) {
  test_seed();
  char *dir = test_tmpdir("receipt");
  char path[4200];
  snprintf(path, sizeof path, "%s/receipt.key", dir);
  uint8_t key[QUIRE_RECEIPT_KEY_SIZE], again[QUIRE_RECEIPT_KEY_SIZE], other[QUIRE_RECEIPT_KEY_SIZE];
  CHECK_OK(quire__receipt_key_ensure(path, key));
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 65);
  CHECK_OK(quire__receipt_key_ensure(path, again)); /* exists: loaded, not replaced */
  CHECK(memcmp(key, again, sizeof key) == 0);
  CHECK_OK(quire__receipt_key_load(path, again));
  CHECK(memcmp(key, again, sizeof key) == 0);

  quire_gid vid, vid2, sid, sid2;
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid));
  CHECK_OK(quire_gid_new(QUIRE_GID_VOLUME, &vid2));
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &sid));
  CHECK_OK(quire_gid_new(QUIRE_GID_SEGMENT, &sid2));
  const uint8_t graft[] = {1, 2, 3, 4, 5}, graft2[] = {1, 2, 3, 4, 6};
  uint8_t mac[QUIRE_RECEIPT_SIZE];
  quire__receipt_make(key, &vid, &sid, graft, sizeof graft, mac);
  CHECK_OK(quire__receipt_check(key, &vid, &sid, graft, sizeof graft, mac, sizeof mac));
  CHECK_RC(quire__receipt_check(key, &vid2, &sid, graft, sizeof graft, mac, sizeof mac), QUIRE_EFORBIDDEN);
  CHECK_RC(quire__receipt_check(key, &vid, &sid2, graft, sizeof graft, mac, sizeof mac), QUIRE_EFORBIDDEN);
  CHECK_RC(quire__receipt_check(key, &vid, &sid, graft2, sizeof graft2, mac, sizeof mac), QUIRE_EFORBIDDEN);
  CHECK_RC(quire__receipt_check(key, &vid, &sid, graft, 4, mac, sizeof mac), QUIRE_EFORBIDDEN);
  CHECK_RC(quire__receipt_check(key, &vid, &sid, graft, sizeof graft, mac, 31), QUIRE_EFORBIDDEN);
  memcpy(other, key, sizeof key);
  other[7] ^= 1;
  CHECK_RC(quire__receipt_check(other, &vid, &sid, graft, sizeof graft, mac, sizeof mac), QUIRE_EFORBIDDEN);
  mac[31] ^= 0x80;
  CHECK_RC(quire__receipt_check(key, &vid, &sid, graft, sizeof graft, mac, sizeof mac), QUIRE_EFORBIDDEN);

  /* Malformed key files. */
  const char *bad[] = {"", "abc\n",
                       "zz"
                       "00000000000000000000000000000000000000000000000000000000000000\n",
                       "00000000000000000000000000000000000000000000000000000000000000000\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(bad[i], f);
    fclose(f);
    CHECK_RC(quire__receipt_key_load(path, again), QUIRE_EINVAL);
    CHECK(strstr(quire_errmsg(), path) != NULL);
  }
  snprintf(path, sizeof path, "%s/none/receipt.key", dir);
  CHECK(quire__receipt_key_load(path, again) < 0);
  CHECK(quire__receipt_key_ensure(path, again) < 0);
  test_rmtree(dir);
  free(dir);
  return test_done("core_receipt");
}
