/*
 * client/imex.c — whole-volume operations: fork (the way out of a conflict
 * that keeps the local commits), import and export of raw page images, and
 * status.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "client/remote.h"
#include "util/util.h"

/* ---- status --------------------------------------------------------------- */

const char *quire_volume_state_name(int state) {
  switch (state) {
  case QUIRE_STATE_OK: return "ok";
  case QUIRE_STATE_CONFLICT: return "conflict";
  case QUIRE_STATE_OFFLINE: return "offline";
  default: return "unknown";
  }
}

/* Counts the pages at the head that are local and that are pending: one
 * pass over the volume's versions (cost proportional to them). */
static int count_pages(quire_volume *v, quire_lsn head, quire_pagecount count, uint64_t *local, uint64_t *pending) {
  lsm_cursor *cur;
  int rc = lsm_cursor_open(v->client->db, &cur);
  if (rc) return rc;
  uint8_t key[CL_P_KEY_LEN];
  size_t kl = cl__key_p(key, &v->vid, 1, 0);
  quire_pageidx cur_idx = 0;
  int cur_kind = CL_PAGE_ABSENT;
  *local = *pending = 0;
  for (rc = lsm_cursor_seek(cur, key, kl, LSM_SEEK_GE);; rc = lsm_cursor_next(cur)) {
    quire_pageidx idx = 0;
    quire_lsn lsn = 0;
    const void *k, *val;
    size_t fl, vl;
    int done = rc != 0;
    if (!done && (rc = lsm_cursor_key(cur, &k, &fl)) != 0) break;
    if (!done && (!cl__key_p_parse(k, fl, &v->vid, &idx, &lsn) || idx > count)) done = 1;
    if (done || idx != cur_idx) {
      if (cur_kind == CL_PAGE_DATA || cur_kind == CL_PAGE_EMPTY) (*local)++;
      if (cur_kind == CL_PAGE_PENDING) (*pending)++;
      cur_kind = CL_PAGE_ABSENT;
      cur_idx = idx;
    }
    if (done) break;
    if (lsn > head) continue;
    if ((rc = lsm_cursor_value(cur, &val, &vl)) != 0) break;
    quire_lsn pend;
    int kind = cl__pval_kind(val, vl, &pend);
    if (kind < 0) {
      rc = kind;
      break;
    }
    cur_kind = kind;
  }
  lsm_cursor_close(cur);
  return rc == QUIRE_ENOTFOUND || rc == QUIRE_EEND ? 0 : rc;
}

int quire_volume_status_get(quire_volume *v, quire_volume_status *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&v->mu);
  out->vid = v->vid;
  snprintf(out->name, sizeof out->name, "%s", v->rec.name);
  out->local_lsn = v->rec.head;
  out->remote_lsn = v->rec.remote_lsn;
  out->remote_local = v->rec.remote_local;
  out->page_count = v->rec.count;
  out->unpushed_commits = v->rec.head - v->rec.remote_local;
  out->push_in_progress = v->has_intent;
  out->state = v->rec.state == QUIRE_STATE_CONFLICT ? QUIRE_STATE_CONFLICT
               : v->offline                         ? QUIRE_STATE_OFFLINE
                                                    : QUIRE_STATE_OK;
  out->last_error = v->rec.last_error;
  snprintf(out->last_error_msg, sizeof out->last_error_msg, "%s", v->rec.last_error_msg);
  quire_lsn head = v->rec.head;
  quire_pagecount count = v->rec.count;
  int rc = cl__vol_pin(v, head);
  pthread_mutex_unlock(&v->mu);
  if (rc) return rc;
  rc = count_pages(v, head, count, &out->pages_local, &out->pages_pending);
  pthread_mutex_lock(&v->mu);
  cl__vol_unpin(v, head);
  pthread_mutex_unlock(&v->mu);
  return rc;
}

/* ---- import / export --------------------------------------------------------- */

int quire_volume_import(quire_volume *v, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return quire__errno("import: open %s", path);
  uint8_t *page = quire__malloc(QUIRE_PAGE_SIZE);
  quire_writer *w = NULL;
  int rc = page ? quire_writer_open(v, &w) : QUIRE_ENOMEM;
  if (!rc) rc = quire_writer_truncate(w, 0);
  quire_pageidx idx = 0;
  while (!rc) {
    size_t got = 0;
    while (got < QUIRE_PAGE_SIZE) {
      ssize_t n = read(fd, page + got, QUIRE_PAGE_SIZE - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        rc = quire__errno("import: read %s", path);
        break;
      }
      if (n == 0) break;
      got += (size_t)n;
    }
    if (rc || got == 0) break;
    memset(page + got, 0, QUIRE_PAGE_SIZE - got);
    if (idx == UINT32_MAX) {
      rc = quire__err(QUIRE_ETOOLARGE, "import: %s has more than 2^32-1 pages", path);
      break;
    }
    rc = quire_writer_write(w, ++idx, page);
    if (got < QUIRE_PAGE_SIZE) break;
  }
  if (!rc) rc = quire_writer_truncate(w, idx);
  if (!rc) rc = quire_writer_commit(w, NULL);
  else quire_writer_abort(w);
  close(fd);
  quire__free(page);
  return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -errno;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

int quire_volume_export(quire_volume *v, const char *path) {
  quire_reader *r;
  int rc = quire_reader_open(v, &r);
  if (rc) return rc;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  uint8_t *page = quire__malloc(QUIRE_PAGE_SIZE);
  if (fd < 0) rc = quire__errno("export: create %s", path);
  else if (!page) rc = QUIRE_ENOMEM;
  for (quire_pageidx i = 1; !rc && i <= r->count; i++) {
    rc = quire_reader_read(r, i, page);
    if (!rc && (rc = write_all(fd, page, QUIRE_PAGE_SIZE)) != 0) rc = quire__err(rc, "export: write %s", path);
  }
  if (!rc && fsync(fd) != 0) rc = quire__errno("export: fsync %s", path);
  if (fd >= 0) close(fd);
  quire__free(page);
  quire_reader_close(r);
  return rc;
}

/* ---- fork ------------------------------------------------------------------- */

struct fork_state {
  quire_volume *v;
  quire_gid new_vid;
  lsm_txn *t;
  struct cl_intent up; /* the segments written so far (only segs is used) */
};

int quire_volume_fork(quire_volume *v, unsigned timeout_ms, quire_gid *new_vid_out) {
  quire_client *c = v->client;
  if (!c->remote) return quire__err(QUIRE_EINVAL, "fork needs the services (this client is local only)");
  struct cl_call call;
  cl__call_init(c, timeout_ms, &call);
  struct fork_state fs;
  memset(&fs, 0, sizeof fs);
  fs.v = v;
  size_t batch = c->o.push_batch_pages;
  quire_pageidx *idx = quire__malloc(batch * sizeof *idx);
  uint8_t *buf = quire__malloc(batch * QUIRE_PAGE_SIZE);
  const uint8_t **pages = quire__malloc(batch * sizeof *pages);
  int rc = idx && buf && pages ? 0 : QUIRE_ENOMEM;
  pthread_mutex_lock(&v->sync_mu);
  pthread_mutex_lock(&v->mu);
  struct quire_reader snap = {v, v->rec.head, v->rec.remote_lsn, v->rec.count};
  struct cl_vrec old = v->rec;
  quire_gid old_vid = v->vid;
  if (!rc && (v->readers || v->writer_open))
    rc = quire__err(QUIRE_EBUSY, "fork: close the volume's readers and writer first");
  if (!rc) rc = cl__vol_pin(v, snap.lsn);
  pthread_mutex_unlock(&v->mu);
  int pinned = rc == 0;
  if (!rc) rc = quire_gid_new(QUIRE_GID_VOLUME, &fs.new_vid);
  if (!rc) rc = lsm_txn_begin(c->db, 0, &fs.t);
  /* Every non-zero page of the head: into the new volume locally and remotely. */
  quire_pageidx next = 1;
  while (!rc && next <= snap.count && next != 0) {
    size_t n = 0;
    while (!rc && n < batch && next <= snap.count && next != 0) {
      uint8_t *p = buf + n * QUIRE_PAGE_SIZE;
      rc = quire_reader_read(&snap, next, p);
      if (rc) break;
      static const uint8_t zero[QUIRE_PAGE_SIZE];
      if (memcmp(p, zero, QUIRE_PAGE_SIZE) != 0) {
        uint8_t key[CL_P_KEY_LEN];
        size_t kl = cl__key_p(key, &fs.new_vid, next, 1);
        rc = lsm_txn_put(fs.t, key, kl, p, QUIRE_PAGE_SIZE);
        idx[n] = next;
        pages[n] = p;
        n++;
      }
      next++;
    }
    if (rc || !n) continue;
    struct quire_ps_written *w = NULL;
    size_t nw = 0;
    rc = cl__ps_write_pages(c->remote, &fs.new_vid, idx, pages, n, &call, &w, &nw);
    if (!rc) rc = cl__intent_add(&fs.up, w, nw);
    quire__psclient_written_free(w, nw);
  }
  quire_gid commit_id;
  struct quire_snapshot rs;
  if (!rc) rc = quire_gid_new(QUIRE_GID_COMMIT, &commit_id);
  struct quire_commit_segment *cs = rc ? NULL : cl__commit_segs(fs.up.segs, fs.up.nsegs);
  if (!rc && !cs) rc = QUIRE_ENOMEM;
  if (!rc)
    rc = cl__ms_commit(c->remote, &fs.new_vid, &c->client_id, &commit_id, 0, snap.count, cs, fs.up.nsegs, &call, &rs);
  quire__free(cs);
  pthread_mutex_lock(&v->mu);
  if (pinned) cl__vol_unpin(v, snap.lsn);
  struct cl_vrec rec;
  memset(&rec, 0, sizeof rec);
  if (!rc) {
    /* The volume is now the fork: its records, its name; the old volume's
     * local data goes (the old remote volume stays as it is). */
    rec.head = 1;
    rec.count = rec.hwm = rec.remote_count = snap.count;
    rec.remote_lsn = rs.lsn;
    rec.remote_local = 1;
    memcpy(rec.name, old.name, sizeof rec.name);
    uint8_t key[CL_KEY_MAX + 256], hi[CL_KEY_MAX];
    size_t kl;
    v->vid = fs.new_vid; /* store_rec keys by v->vid; mu is held */
    rc = cl__vol_store_rec(v, fs.t, &rec);
    v->vid = old_vid;
    if (!rc && old.name[0]) {
      kl = cl__key_n(key, old.name, strlen(old.name));
      rc = lsm_txn_put(fs.t, key, kl, fs.new_vid.b, QUIRE_GID_SIZE);
    }
    static const char tags[] = {'I', 'L', 'P', 'V'};
    for (size_t i = 0; i < sizeof tags && !rc; i++) {
      key[0] = hi[0] = (uint8_t)tags[i];
      memcpy(key + 1, old_vid.b, QUIRE_GID_SIZE);
      memcpy(hi + 1, old_vid.b, QUIRE_GID_SIZE);
      /* hi: the smallest key after every key with this prefix */
      size_t hl = 1 + QUIRE_GID_SIZE;
      while (hl > 1 && hi[hl - 1] == 0xFF) hl--;
      hi[hl - 1]++;
      rc = lsm_txn_delete_range(fs.t, key, 1 + QUIRE_GID_SIZE, hi, hl);
    }
    if (!rc) {
      rc = lsm_txn_commit(fs.t);
      fs.t = NULL;
    }
    if (!rc) {
      v->vid = fs.new_vid;
      cl__vol_settle(v, &rec);
      cl__count(&v->stats, &c->stats, CL_STAT(forks), 1);
      if (new_vid_out) *new_vid_out = fs.new_vid;
    }
  }
  pthread_mutex_unlock(&v->mu);
  pthread_mutex_unlock(&v->sync_mu);
  lsm_txn_abort(fs.t);
  cl__intent_clear(&fs.up);
  quire__free(idx);
  quire__free(buf);
  quire__free(pages);
  return rc;
}
