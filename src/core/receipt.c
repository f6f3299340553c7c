/*
 * core/receipt.c — write receipts (see receipt.h): HMAC-SHA-256 from
 * libsodium over a fixed layout, and the key file.
 */
#include "core/receipt.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/endian.h"
#include "util/err.h"
#include "util/log.h"

#define TAG "quire receipt v1"

void quire__receipt_make(const uint8_t key[QUIRE_RECEIPT_KEY_SIZE], const quire_gid *vid,
                         const quire_gid *sid, const uint8_t *graft, size_t graft_len,
                         uint8_t out[QUIRE_RECEIPT_SIZE]) {
  crypto_auth_hmacsha256_state st;
  uint8_t head[52];
  memcpy(head, TAG, 16);
  memcpy(head + 16, vid->b, 16);
  memcpy(head + 32, sid->b, 16);
  st_le32(head + 48, (uint32_t)graft_len);
  crypto_auth_hmacsha256_init(&st, key, QUIRE_RECEIPT_KEY_SIZE);
  crypto_auth_hmacsha256_update(&st, head, sizeof head);
  if (graft_len) crypto_auth_hmacsha256_update(&st, graft, graft_len);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

int quire__receipt_check(const uint8_t key[QUIRE_RECEIPT_KEY_SIZE], const quire_gid *vid,
                         const quire_gid *sid, const uint8_t *graft, size_t graft_len, const uint8_t *mac,
                         size_t mac_len) {
  if (mac_len != QUIRE_RECEIPT_SIZE || graft_len > UINT32_MAX) return QUIRE_EFORBIDDEN;
  uint8_t want[QUIRE_RECEIPT_SIZE];
  quire__receipt_make(key, vid, sid, graft, graft_len, want);
  return sodium_memcmp(want, mac, QUIRE_RECEIPT_SIZE) == 0 ? 0 : QUIRE_EFORBIDDEN;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int quire__receipt_key_load(const char *path, uint8_t key[QUIRE_RECEIPT_KEY_SIZE]) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return quire__errno("receipt key %s", path);
  char text[2 * QUIRE_RECEIPT_KEY_SIZE + 4];
  struct stat st;
  ssize_t n = fstat(fd, &st) == 0 ? read(fd, text, sizeof text) : -1;
  int rc = n < 0 ? quire__errno("reading receipt key %s", path) : 0;
  close(fd);
  if (rc) return rc;
  while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
  if (n != 2 * QUIRE_RECEIPT_KEY_SIZE)
    return quire__err(QUIRE_EINVAL, "receipt key %s: want %d hex digits", path, 2 * QUIRE_RECEIPT_KEY_SIZE);
  for (int i = 0; i < QUIRE_RECEIPT_KEY_SIZE; i++) {
    int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return quire__err(QUIRE_EINVAL, "receipt key %s: not a hex digit", path);
    key[i] = (uint8_t)(hi << 4 | lo);
  }
  sodium_memzero(text, sizeof text);
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    QLOG_WARN("receipt key %s may be read by others (mode %03o); chmod 600 it", path,
              (unsigned)(st.st_mode & 0777));
  return 0;
}

int quire__receipt_key_ensure(const char *path, uint8_t key[QUIRE_RECEIPT_KEY_SIZE]) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno != EEXIST) return quire__errno("creating receipt key %s", path);
  if (fd >= 0) {
    uint8_t fresh[QUIRE_RECEIPT_KEY_SIZE];
    char text[2 * QUIRE_RECEIPT_KEY_SIZE + 1];
    int rc = getrandom(fresh, sizeof fresh, 0) == (ssize_t)sizeof fresh ? 0 : quire__errno("getrandom");
    for (int i = 0; i < QUIRE_RECEIPT_KEY_SIZE; i++) snprintf(text + 2 * i, 3, "%02x", fresh[i]);
    text[2 * QUIRE_RECEIPT_KEY_SIZE] = '\n';
    if (rc == 0 && write(fd, text, sizeof text) != (ssize_t)sizeof text)
      rc = quire__errno("writing receipt key %s", path);
    if (rc == 0 && fsync(fd) != 0) rc = quire__errno("syncing receipt key %s", path);
    close(fd);
    sodium_memzero(fresh, sizeof fresh);
    sodium_memzero(text, sizeof text);
    if (rc) {
      unlink(path);
      return rc;
    }
    QLOG_INFO("created receipt key %s", path);
  }
  return quire__receipt_key_load(path, key);
}
