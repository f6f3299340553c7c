/*
 * client/store.c — the local store's keys and values (docs/CLIENT.md, "Local
 * store"), and the page lookup every read goes through.
 *
 * Keys start with one letter and put integers big-endian so that memcmp
 * order is numeric order: all versions of one page are adjacent, newest
 * last, and "the newest version at or below lsn S" is one seek LE to
 * P{vid}{idx}{S}. Values are little-endian and start with a format version
 * byte; every decoder checks every length against what it was given.
 */
#include <string.h>

#include "client/client_int.h"
#include "util/util.h"

#define VREC_VERSION 1
#define INTENT_VERSION 1
#define LREC_VERSION 1

size_t cl__key_m(uint8_t *k) {
  k[0] = 'M';
  return 1;
}

size_t cl__key_n(uint8_t *k, const char *name, size_t len) {
  k[0] = 'N';
  memcpy(k + 1, name, len);
  return 1 + len;
}

static size_t key_vid(uint8_t *k, char tag, const quire_gid *vid) {
  k[0] = (uint8_t)tag;
  memcpy(k + 1, vid->b, QUIRE_GID_SIZE);
  return 1 + QUIRE_GID_SIZE;
}

size_t cl__key_v(uint8_t *k, const quire_gid *vid) { return key_vid(k, 'V', vid); }
size_t cl__key_i(uint8_t *k, const quire_gid *vid) { return key_vid(k, 'I', vid); }

size_t cl__key_l(uint8_t *k, const quire_gid *vid, quire_lsn lsn) {
  size_t n = key_vid(k, 'L', vid);
  st_be64(k + n, lsn);
  return n + 8;
}

size_t cl__key_p(uint8_t *k, const quire_gid *vid, quire_pageidx idx, quire_lsn lsn) {
  size_t n = key_vid(k, 'P', vid);
  st_be32(k + n, idx);
  st_be64(k + n + 4, lsn);
  return n + 12;
}

int cl__key_p_parse(const uint8_t *k, size_t kl, const quire_gid *vid, quire_pageidx *idx, quire_lsn *lsn) {
  if (kl != CL_P_KEY_LEN || k[0] != 'P' || memcmp(k + 1, vid->b, QUIRE_GID_SIZE) != 0) return 0;
  *idx = ld_be32(k + 17);
  *lsn = ld_be64(k + 21);
  return 1;
}

/* ---- V{vid}: the volume record ---------------------------------------------
 *  off size
 *   0   1   version (1)
 *   1   1   state (0 ok, 1 conflict)
 *   2   1   flags (bit 0: adopted and never pulled)
 *   3   1   name length N (0..255)
 *   4   4   page_count at head
 *   8   4   hwm: highest page_count ever
 *  12   8   head (local lsn)
 *  20   8   remote lsn
 *  28   8   the local lsn remote lsn maps to
 *  36   4   last error (a QUIRE_E* or -errno; 0 = none)
 *  40   1   last error message length M (0..199)
 *  41   4   page_count at the remote lsn
 *  45   N   name
 *  45+N M   last error message
 */
int cl__vrec_encode(const struct cl_vrec *v, quire_buf *out) {
  size_t nl = strnlen(v->name, sizeof v->name - 1), ml = strnlen(v->last_error_msg, sizeof v->last_error_msg - 1);
  uint8_t *p;
  int rc = quire__buf_extend(out, 45 + nl + ml, &p);
  if (rc) return rc;
  p[0] = VREC_VERSION;
  p[1] = (uint8_t)v->state;
  p[2] = v->adopted_unpulled ? 1 : 0;
  p[3] = (uint8_t)nl;
  st_le32(p + 4, v->count);
  st_le32(p + 8, v->hwm);
  st_le64(p + 12, v->head);
  st_le64(p + 20, v->remote_lsn);
  st_le64(p + 28, v->remote_local);
  st_le32(p + 36, (uint32_t)v->last_error);
  p[40] = (uint8_t)ml;
  st_le32(p + 41, v->remote_count);
  memcpy(p + 45, v->name, nl);
  memcpy(p + 45 + nl, v->last_error_msg, ml);
  return 0;
}

int cl__vrec_decode(const void *vp, size_t n, struct cl_vrec *v) {
  const uint8_t *p = vp;
  memset(v, 0, sizeof *v);
  if (n < 45) return quire__err(QUIRE_ECORRUPT, "volume record: %zu bytes, at least 45 expected", n);
  if (p[0] != VREC_VERSION) return quire__err(QUIRE_EVERSION, "volume record version %u", p[0]);
  size_t nl = p[3], ml = p[40];
  if (n != 45 + nl + ml || p[1] > QUIRE_STATE_CONFLICT || ml >= sizeof v->last_error_msg)
    return quire__err(QUIRE_ECORRUPT, "volume record: bad lengths or state");
  if (memchr(p + 45, 0, nl + ml))
    return quire__err(QUIRE_ECORRUPT, "volume record: a NUL byte inside the name or the error message");
  v->state = p[1];
  v->adopted_unpulled = p[2] & 1;
  v->count = ld_le32(p + 4);
  v->hwm = ld_le32(p + 8);
  v->head = ld_le64(p + 12);
  v->remote_lsn = ld_le64(p + 20);
  v->remote_local = ld_le64(p + 28);
  v->last_error = (int32_t)ld_le32(p + 36);
  v->remote_count = ld_le32(p + 41);
  memcpy(v->name, p + 45, nl);
  memcpy(v->last_error_msg, p + 45 + nl, ml);
  if (v->remote_local > v->head || v->hwm < v->count)
    return quire__err(QUIRE_ECORRUPT, "volume record: remote mapping past the head or hwm below count");
  return 0;
}

/* ---- I{vid}: the push intent ------------------------------------------------
 *  off size
 *   0   1   version (1)
 *   1  16   commit id
 *  17   8   base remote lsn
 *  25   8   end local lsn
 *  33   4   page_count
 *  37   8   created (wall ms)
 *  45   8   oldest local commit folded in (wall ms)
 *  53   4   segment count S
 *  57  ...  S times: segment id (16), graft length G (4), graft (G bytes),
 *           receipt length R (1, 0..32), receipt (R bytes)
 */
void cl__intent_clear(struct cl_intent *in) {
  for (uint32_t i = 0; i < in->nsegs; i++) quire__free(in->segs[i].graft);
  quire__free(in->segs);
  memset(in, 0, sizeof *in);
}

int cl__intent_encode(const struct cl_intent *in, quire_buf *out) {
  uint8_t *p;
  int rc = quire__buf_extend(out, 57, &p);
  if (rc) return rc;
  p[0] = INTENT_VERSION;
  memcpy(p + 1, in->commit_id.b, 16);
  st_le64(p + 17, in->base_remote);
  st_le64(p + 25, in->end_local);
  st_le32(p + 33, in->count);
  st_le64(p + 37, in->created_ms);
  st_le64(p + 45, in->first_commit_ms);
  st_le32(p + 53, in->nsegs);
  for (uint32_t i = 0; i < in->nsegs && !rc; i++) {
    const struct cl_seg *sg = &in->segs[i];
    rc = quire__buf_append(out, sg->sid.b, 16);
    if (!rc) rc = quire__buf_append_le32(out, sg->graft_len);
    if (!rc) rc = quire__buf_append(out, sg->graft, sg->graft_len);
    if (!rc) rc = quire__buf_append_u8(out, (uint8_t)sg->receipt_len);
    if (!rc) rc = quire__buf_append(out, sg->receipt, sg->receipt_len);
  }
  return rc;
}

int cl__intent_decode(const void *vp, size_t n, struct cl_intent *in) {
  const uint8_t *p = vp;
  memset(in, 0, sizeof *in);
  if (n < 57) return quire__err(QUIRE_ECORRUPT, "push intent: %zu bytes, at least 57 expected", n);
  if (p[0] != INTENT_VERSION) return quire__err(QUIRE_EVERSION, "push intent version %u", p[0]);
  memcpy(in->commit_id.b, p + 1, 16);
  in->base_remote = ld_le64(p + 17);
  in->end_local = ld_le64(p + 25);
  in->count = ld_le32(p + 33);
  in->created_ms = ld_le64(p + 37);
  in->first_commit_ms = ld_le64(p + 45);
  uint32_t ns = ld_le32(p + 53);
  if (quire_gid_type(&in->commit_id) != QUIRE_GID_COMMIT || ns > (n - 57) / 21)
    return quire__err(QUIRE_ECORRUPT, "push intent: bad commit id or segment count");
  in->segs = quire__calloc(ns ? ns : 1, sizeof *in->segs);
  if (!in->segs) return QUIRE_ENOMEM;
  size_t off = 57;
  for (uint32_t i = 0; i < ns; i++) {
    struct cl_seg *sg = &in->segs[i];
    if (n - off < 20) goto bad;
    memcpy(sg->sid.b, p + off, 16);
    uint32_t gl = ld_le32(p + off + 16);
    off += 20;
    if (gl > n - off || quire_gid_type(&sg->sid) != QUIRE_GID_SEGMENT) goto bad;
    splinter_view_t view;
    if (splinter_view_open(p + off, gl, &view)) goto bad;
    sg->graft = quire__memdup(p + off, gl ? gl : 1);
    if (!sg->graft) {
      cl__intent_clear(in);
      return QUIRE_ENOMEM;
    }
    sg->graft_len = gl;
    in->nsegs = i + 1;
    off += gl;
    if (n - off < 1 || p[off] > sizeof sg->receipt || p[off] > n - off - 1) goto bad;
    sg->receipt_len = p[off];
    memcpy(sg->receipt, p + off + 1, sg->receipt_len);
    off += 1 + sg->receipt_len;
  }
  if (off != n) goto bad;
  return 0;
bad:
  cl__intent_clear(in);
  return quire__err(QUIRE_ECORRUPT, "push intent: malformed segment list");
}

/* ---- L{vid}{lsn}: a local commit --------------------------------------------
 *  off size
 *   0   1   version (1)
 *   1   4   page_count after the commit
 *   5   8   time (wall ms)
 *  13  ...  splinter of the pages it changed
 */
int cl__lrec_encode(quire_pagecount count, uint64_t time_ms, const splinter_t *pages, quire_buf *out) {
  size_t sz;
  int rc = splinter_serialized_size(pages, &sz);
  uint8_t *p;
  if (!rc) rc = quire__buf_extend(out, 13 + sz, &p);
  if (rc) return rc;
  p[0] = LREC_VERSION;
  st_le32(p + 1, count);
  st_le64(p + 5, time_ms);
  size_t w;
  return splinter_serialize(pages, p + 13, sz, &w);
}

int cl__lrec_decode(const void *vp, size_t n, quire_pagecount *count, uint64_t *time_ms, splinter_view_t *pages) {
  const uint8_t *p = vp;
  if (n < 13 || p[0] != LREC_VERSION) return quire__err(QUIRE_ECORRUPT, "local commit record: malformed");
  *count = ld_le32(p + 1);
  *time_ms = ld_le64(p + 5);
  int rc = splinter_view_open(p + 13, n - 13, pages);
  return rc ? quire__err(QUIRE_ECORRUPT, "local commit record: bad page set") : 0;
}

/* ---- P{vid}{idx}{lsn}: a page version --------------------------------------- */

int cl__pval_kind(const void *vp, size_t n, quire_lsn *pending_lsn) {
  const uint8_t *p = vp;
  if (n == QUIRE_PAGE_SIZE) return CL_PAGE_DATA;
  if (n == 1 && p[0] == CL_VALUE_EMPTY) return CL_PAGE_EMPTY;
  if (n == 9 && p[0] == CL_VALUE_PENDING) {
    *pending_lsn = ld_le64(p + 1);
    if (*pending_lsn) return CL_PAGE_PENDING;
  }
  return quire__err(QUIRE_ECORRUPT, "local page version: %zu bytes is neither a page nor a marker", n);
}

int cl__page_lookup(lsm_db *db, const quire_gid *vid, quire_pageidx idx, quire_lsn lsn, int *kind,
                    quire_lsn *at, quire_lsn *pending, uint8_t *page) {
  uint8_t key[CL_P_KEY_LEN], found[CL_KEY_MAX];
  size_t kl = cl__key_p(key, vid, idx, lsn), fl = 0;
  lsm_value val = {0};
  *kind = CL_PAGE_ABSENT;
  *at = 0;
  *pending = 0;
  int rc = lsm_get_seek(db, key, kl, LSM_SEEK_LE, found, sizeof found, &fl, &val);
  if (rc == QUIRE_ENOTFOUND || rc == QUIRE_ETOOLARGE) {
    rc = 0; /* nothing at or below, or a longer key that is not a page version (a name) */
    goto zero;
  }
  if (rc) return rc;
  quire_pageidx fidx;
  quire_lsn flsn;
  if (!cl__key_p_parse(found, fl, vid, &fidx, &flsn) || fidx != idx) {
    lsm_value_release(&val);
    goto zero;
  }
  rc = cl__pval_kind(val.data, val.len, pending);
  if (rc < 0) {
    lsm_value_release(&val);
    return rc;
  }
  *kind = rc;
  *at = flsn;
  rc = 0;
  if (page) {
    if (*kind == CL_PAGE_DATA)
      memcpy(page, val.data, QUIRE_PAGE_SIZE);
    else
      memset(page, 0, QUIRE_PAGE_SIZE);
  }
  lsm_value_release(&val);
  return 0;
zero:
  if (page) memset(page, 0, QUIRE_PAGE_SIZE);
  return rc;
}
