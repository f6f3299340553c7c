/*
 * gc/sweep.c — retention and segment garbage collection (DESIGN.md §8.4,
 * docs/GC.md has the rules and the crash analysis).
 *
 * Retention of one volume. The base B (the first retained LSN) is always a
 * checkpoint (or 1): every commit at or after a checkpoint carries a
 * checkpoint_lsn at or after it, so the segment query of any retained LSN
 * stops at or above B and never needs a deleted commit. The new base is the
 * checkpoint_lsn of the oldest commit retention must keep (so it is a
 * checkpoint at or below it). Order: the marker base/{B} first (put if
 * absent; markers only grow, so two passes racing cannot lower it), then
 * every marker and commit object below B, found by listing volumes/{vid}/,
 * deleted in key order (the log oldest first: a crash leaves a suffix of
 * the log, never a hole). The listing runs every pass, so whatever a failed
 * or killed pass left below the base is finished by the next. Segment
 * deletes that find the key gone (a racing pass) count as already gone.
 *
 * A pass. Volumes are found by listing volumes/ page by page, skipping to
 * the next volume once one is seen. For each: the checkpoint policy, then
 * retention, then every segment a retained commit references goes into the
 * mark set (an LSM file with sync off: memory stays within its memtable and
 * cache budgets whatever the store holds). Then segments/ is listed page by
 * page: a segment is deleted only when it is unmarked and its id's
 * timestamp is older than the grace period. A segment id's time is when
 * the pagestore (or the checkpoint job) created it, before its upload;
 * the metastore refuses commits of segments older than half the grace
 * period (max_segment_age_ms), so an unmarked segment past the grace
 * period can never be committed later.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "gc/gc_int.h"
#include "quire/lsm.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"

/* ---- retention -------------------------------------------------------------- */

static int tidy_below(quire_objstore *store, const quire_gid *vid, quire_lsn base, uint64_t *deleted);

int quire__gc_retain(quire_metastore *ms, quire_objstore *store, const struct gc_retention_opts *o,
                     const quire_gid *vid, int dry_run, struct gc_retain_result *out) {
  memset(out, 0, sizeof *out);
  uint64_t max_age = o && o->max_age_ms ? o->max_age_ms : 7ull * 24 * 3600 * 1000;
  unsigned min_commits = o && o->min_commits ? o->min_commits : 100;
  quire_lsn head, base;
  int rc = quire__ms_refresh(ms, vid, &head);
  if (!rc) rc = quire__ms_base(ms, vid, 0, &base);
  if (rc) return rc;
  out->head = head;
  out->base_before = out->base = base;
  if (head == 0) return 0;
  quire_buf buf;
  quire__buf_init(&buf, QUIRE_COMMIT_MAX_SIZE);
  struct quire_snapshot s;
  /* The oldest commit to keep: not past the head's checkpoint, the newest
   * min_commits, nor any younger than max_age. */
  rc = quire__ms_load(ms, vid, head, &buf, NULL, &s);
  quire_lsn keep = s.checkpoint_lsn;
  if (!rc && head >= min_commits && head - min_commits + 1 < keep) keep = head - min_commits + 1;
  if (!rc && head < min_commits) keep = 0;
  uint64_t now = quire__wall_ms(), old = now > max_age ? now - max_age : 0;
  while (!rc && keep > base && keep > 0) {
    rc = quire__ms_load(ms, vid, keep, &buf, NULL, &s);
    if (rc || s.timestamp_ms < old) break;
    keep--; /* keep is young: the one before it must stay too */
  }
  quire_lsn nb = 0;
  if (!rc && keep > base) {
    rc = quire__ms_load(ms, vid, keep, &buf, NULL, &s);
    if (!rc) nb = s.checkpoint_lsn;
  }
  quire__buf_free(&buf);
  if (rc) return rc;
  if (nb > base) {
    out->base = nb;
    if (dry_run) {
      out->commits_deleted = nb - base;
      return 0;
    }
    char key[80];
    quire__ms_base_key(vid, nb, key);
    rc = quire_objstore_put_if_absent(store, key, "", 0);
    if (rc && rc != QUIRE_EEXIST) return quire__err(rc, "writing %s: %s", key, quire_errmsg());
    quire__ms_base_raise(ms, vid, nb);
  }
  if (dry_run) return 0;
  return tidy_below(store, vid, out->base, &out->commits_deleted);
}

/* Deletes every commit object and base marker of vid below base, oldest
 * first, whatever pass wrote the marker: it lists volumes/{vid}/ (markers
 * sort before the log) and stops at the first commit at or above base. So
 * work a failed or killed pass left (log objects below its marker, old
 * markers) is finished by the next pass; when there is none it costs one
 * list request. *deleted counts the commit objects this call removed. */
static int tidy_below(quire_objstore *store, const quire_gid *vid, quire_lsn base, uint64_t *deleted) {
  char vs[QUIRE_GID_TEXT_LEN + 1], prefix[96], after[160] = "";
  quire_gid_format(vid, vs);
  size_t plen = (size_t)snprintf(prefix, sizeof prefix, "volumes/%s/", vs);
  size_t limit = 16; /* usually nothing is left: one small page */
  int rc = 0, done = 0;
  while (!rc && !done) {
    quire_objstore_list list;
    rc = quire_objstore_list_keys(store, prefix, after, limit, &list);
    if (rc) {
      quire_objstore_list_free(&list);
      return quire__err(rc, "listing %s: %s", prefix, quire_errmsg());
    }
    int last = !list.truncated || list.count == 0;
    for (size_t i = 0; i < list.count && !rc && !done; i++) {
      const char *key = list.entries[i].key, *rest = key + plen;
      int is_log = strncmp(rest, "log/", 4) == 0, is_marker = strncmp(rest, "base/", 5) == 0;
      if (!is_log && !is_marker) continue;
      const char *hex = rest + (is_log ? 4 : 5);
      char *end;
      unsigned long long l = strtoull(hex, &end, 16);
      if (end - hex != 16 || *end) continue; /* not ours */
      if (l >= base) {
        if (is_log) done = 1; /* the log from here on is retained */
        continue;             /* the current marker (or a larger one) */
      }
      int found;
      rc = quire_objstore_delete_found(store, key, &found);
      if (rc)
        rc = quire__err(rc, "deleting %s: %s", key, quire_errmsg());
      else if (is_log && found != 0)
        (*deleted)++;
    }
    if (list.count) snprintf(after, sizeof after, "%s", list.entries[list.count - 1].key);
    quire_objstore_list_free(&list);
    done |= last;
    limit = 1000;
  }
  return rc;
}

/* ---- the mark set ------------------------------------------------------------ */

struct marks {
  lsm_db *db;
  char path[4200];
  lsm_txn *txn;
  unsigned pending;
  uint64_t count;
};

#define MARKS_PREFIX "quire-gc-marks-"

/* Removes the mark files of passes that were killed (a crash leaves its
 * file behind: docs/GC.md, crash step 6). A live pass holds an exclusive
 * flock on its file (the LSM's lock) for as long as it runs, so a file whose
 * lock can be taken belongs to nobody. Should a pass that has created its
 * file but not locked it yet lose it here, it keeps working on the unlinked
 * file through its descriptor. Returns how many were removed. */
static uint64_t remove_stale_marks(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  uint64_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, MARKS_PREFIX, sizeof MARKS_PREFIX - 1) != 0) continue;
    int fd = openat(dirfd(d), e->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dirfd(d), e->d_name, 0) == 0) {
      QLOG_INFO("gc: removed %s/%s, left by a pass that did not finish", dir, e->d_name);
      n++;
    }
    close(fd);
  }
  closedir(d);
  return n;
}

static int marks_open(struct marks *m, const char *dir, uint64_t *stale) {
  memset(m, 0, sizeof *m);
  if (!dir) dir = getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  *stale = remove_stale_marks(dir);
  quire_gid g;
  int rc = quire_gid_new(QUIRE_GID_COMMIT, &g);
  if (rc) return rc;
  char t[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&g, t);
  snprintf(m->path, sizeof m->path, "%s/" MARKS_PREFIX "%s", dir, t);
  lsm_options lo;
  lsm_options_init(&lo);
  lo.create = 1;
  lo.sync_mode = LSM_SYNC_OFF;
  lo.cache_bytes = 8u << 20;
  lo.memtable_bytes = 8u << 20;
  lo.txn_mem_bytes = 4u << 20;
  rc = lsm_open(m->path, &lo, &m->db);
  if (rc) return quire__err(rc, "mark set %s: %s", m->path, quire_errmsg());
  return 0;
}

static int marks_flush(struct marks *m) {
  if (!m->txn) return 0;
  int rc = lsm_txn_commit(m->txn);
  m->txn = NULL;
  m->pending = 0;
  return rc;
}

static int marks_add(struct marks *m, const quire_gid *sid) {
  int rc = 0;
  if (!m->txn && (rc = lsm_txn_begin(m->db, 0, &m->txn)) != 0) return rc;
  if ((rc = lsm_txn_put(m->txn, sid->b, QUIRE_GID_SIZE, "", 0)) != 0) return rc;
  if (++m->pending >= 4096) rc = marks_flush(m);
  return rc;
}

static int marks_has(struct marks *m, const quire_gid *sid, int *yes) {
  lsm_value v = {0};
  int rc = lsm_get(m->db, sid->b, QUIRE_GID_SIZE, &v);
  *yes = rc == 0;
  lsm_value_release(&v);
  return rc == QUIRE_ENOTFOUND ? 0 : rc;
}

static void marks_close(struct marks *m) {
  if (m->txn) lsm_txn_abort(m->txn);
  lsm_close(m->db);
  if (m->path[0]) unlink(m->path);
}

/* Counts distinct marks (once, at the end). */
static uint64_t marks_count(struct marks *m) {
  lsm_cursor *c;
  uint64_t n = 0;
  if (lsm_cursor_open(m->db, &c) != 0) return 0;
  for (int rc = lsm_cursor_first(c); rc == 0; rc = lsm_cursor_next(c)) n++;
  lsm_cursor_close(c);
  return n;
}

/* ---- a pass ------------------------------------------------------------------ */

static void progress(const struct gc_pass_opts *o, const char *phase, uint64_t done) {
  if (o->progress) o->progress(o->progress_ctx, phase, done);
}

/* Marks every segment of vid's retained commits [base, head]. */
static int mark_volume(quire_metastore *ms, struct marks *m, const quire_gid *vid) {
  quire_lsn head, base;
  int rc = quire__ms_refresh(ms, vid, &head);
  if (!rc) rc = quire__ms_base(ms, vid, 0, &base);
  if (rc) return rc;
  quire_buf buf;
  quire__buf_init(&buf, QUIRE_COMMIT_MAX_SIZE);
  for (quire_lsn l = base; rc == 0 && l <= head && head; l++) {
    struct quire_commit c;
    rc = quire__ms_load(ms, vid, l, &buf, &c, NULL);
    if (rc) break;
    for (uint32_t k = 0; k < c.nsegments && rc == 0; k++) rc = marks_add(m, &c.segments[k].sid);
    quire__commit_clear(&c);
  }
  quire__buf_free(&buf);
  return rc;
}

static uint64_t calls(const quire_objstore *s) {
  quire_objstore_stats st;
  quire_objstore_stats_get(s, &st);
  uint64_t n = 0;
  for (int i = 0; i < QUIRE_OBJSTORE_OP_COUNT_; i++) n += st.calls[i];
  return n;
}

/* The volume id at the start of key "volumes/{vid}/...", or -1. */
static int key_vid(const char *key, quire_gid *vid) {
  if (strncmp(key, "volumes/", 8) != 0) return -1;
  const char *p = key + 8, *slash = strchr(p, '/');
  if (!slash || slash - p != QUIRE_GID_TEXT_LEN) return -1;
  if (quire_gid_parse(p, QUIRE_GID_TEXT_LEN, QUIRE_GID_VOLUME, vid) != 0) return -1;
  return 0;
}

static int do_volume(quire_metastore *ms, const struct gc_pass_opts *o, struct marks *m, const quire_gid *vid,
                     struct gc_pass_result *r) {
  int rc = 0;
  if (!o->no_checkpoints && !o->dry_run) {
    struct gc_checkpoint_opts co = o->checkpoint;
    co.store = o->store;
    struct gc_checkpoint_result cr;
    rc = quire__gc_checkpoint(ms, &co, vid, 0, &cr);
    if (rc == 0 && cr.written) r->checkpoints++;
    if (rc && rc != QUIRE_ENOMEM) {
      /* Busy volume (ECONFLICT) or a store fault: no checkpoint this pass,
       * but retention and the mark go on (the mark re-reads the head, so a
       * checkpoint that landed with its acknowledgement lost is marked). */
      if (rc != QUIRE_ECONFLICT) {
        char s[QUIRE_GID_TEXT_LEN + 1];
        quire_gid_format(vid, s);
        QLOG_WARN("gc: volume %s: checkpoint failed: %s: %s", s, quire_strerror(rc), quire_errmsg());
      }
      rc = 0;
    }
  }
  struct gc_retain_result rr;
  if (!rc) rc = quire__gc_retain(ms, o->store, &o->retention, vid, o->dry_run, &rr);
  if (!rc) r->commits_deleted += rr.commits_deleted;
  if (!rc) rc = mark_volume(ms, m, vid);
  return rc;
}

int quire__gc_pass(quire_metastore *ms, const struct gc_pass_opts *o, struct gc_pass_result *out) {
  memset(out, 0, sizeof *out);
  uint64_t t0 = quire__mono_ms(), c0 = calls(o->store);
  uint64_t grace = o->grace_ms ? o->grace_ms : 3600ull * 1000;
  struct marks m;
  int rc = marks_open(&m, o->work_dir, &out->stale_marks_removed);
  if (rc) return rc;
  /* Phase 1: volumes. */
  char after[128] = "";
  for (;;) {
    quire_objstore_list list;
    rc = quire_objstore_list_keys(o->store, "volumes/", after, 1000, &list);
    if (rc) {
      quire_objstore_list_free(&list);
      rc = quire__err(rc, "listing volumes/: %s", quire_errmsg());
      break;
    }
    int more = list.truncated && list.count;
    if (more) snprintf(after, sizeof after, "%s", list.entries[list.count - 1].key);
    quire_gid vid, last = {{0}};
    for (size_t i = 0; i < list.count; i++) {
      if (key_vid(list.entries[i].key, &vid) != 0 || quire_gid_cmp(&vid, &last) == 0) continue;
      last = vid;
      out->volumes++;
      int vrc = do_volume(ms, o, &m, &vid, out);
      if (vrc) {
        char s[QUIRE_GID_TEXT_LEN + 1];
        quire_gid_format(&vid, s);
        QLOG_WARN("gc: volume %s skipped: %s: %s", s, quire_strerror(vrc), quire_errmsg());
        out->volume_errors++;
        if (vrc == QUIRE_ENOMEM || vrc == QUIRE_EIO) rc = vrc;
      }
      /* Skip the rest of this volume's keys: "volumes/{vid}0" sorts after
       * every "volumes/{vid}/..." ('0' follows '/') and before the next id. */
      char s[QUIRE_GID_TEXT_LEN + 1];
      quire_gid_format(&vid, s);
      snprintf(after, sizeof after, "volumes/%s0", s);
      more = 1;
    }
    quire_objstore_list_free(&list);
    progress(o, "volumes", out->volumes);
    if (rc || !more) break;
  }
  if (!rc) rc = marks_flush(&m);
  if (!rc) out->segments_marked = marks_count(&m);
  if (!rc) progress(o, "marked", out->segments_marked); /* every volume marked; the sweep is next */
  /* Phase 2: sweep, only when every volume was marked. */
  if (!rc && out->volume_errors) {
    QLOG_WARN("gc: %u volumes could not be marked; no segment is deleted this pass", out->volume_errors);
  } else if (!rc) {
    uint64_t now = quire__wall_ms(), listed = 0;
    after[0] = '\0';
    for (;;) {
      quire_objstore_list list;
      rc = quire_objstore_list_keys(o->store, "segments/", after, 1000, &list);
      if (rc) {
        quire_objstore_list_free(&list);
        rc = quire__err(rc, "listing segments/: %s", quire_errmsg());
        break;
      }
      for (size_t i = 0; i < list.count && !rc; i++) {
        const char *key = list.entries[i].key, *name = key + 9;
        quire_gid sid;
        listed++;
        if (strlen(name) != QUIRE_GID_TEXT_LEN ||
            quire_gid_parse(name, QUIRE_GID_TEXT_LEN, QUIRE_GID_SEGMENT, &sid) != 0)
          continue; /* not ours: never touched */
        int marked;
        rc = marks_has(&m, &sid, &marked);
        if (rc) break;
        uint64_t born = quire_gid_time_ms(&sid);
        if (marked || born + grace > now) {
          out->objects_live++;
          out->bytes_live += list.entries[i].size;
          if (!marked) out->objects_young++;
          continue;
        }
        if (!o->dry_run) {
          int found;
          if (o->before_delete) o->before_delete(o->hook_ctx, key);
          int drc = quire_objstore_delete_found(o->store, key, &found);
          if (drc) {
            QLOG_WARN("gc: deleting %s: %s: %s", key, quire_strerror(drc), quire_errmsg());
            continue; /* the next pass tries again */
          }
          if (found == 0) {
            out->objects_gone++; /* a racing pass deleted it first: not ours to count */
            continue;
          }
        }
        out->objects_deleted++;
        out->bytes_deleted += list.entries[i].size;
      }
      int more = list.truncated && list.count;
      if (more) snprintf(after, sizeof after, "%s", list.entries[list.count - 1].key);
      quire_objstore_list_free(&list);
      progress(o, "segments", listed);
      if (rc || !more) break;
    }
  }
  marks_close(&m);
  out->requests = calls(o->store) - c0;
  out->duration_ms = quire__mono_ms() - t0;
  quire_metrics *mt = o->metrics;
  if (mt && !o->dry_run) {
    quire__metrics_count(mt, "quire_gc_passes_total", "GC passes", rc ? "result=\"error\"" : "result=\"ok\"",
                         1);
    quire__metrics_count(mt, "quire_gc_checkpoints_total", "checkpoints written by GC passes", "",
                         out->checkpoints);
    quire__metrics_count(mt, "quire_gc_deleted_objects_total", "segments deleted by GC", "",
                         out->objects_deleted);
    quire__metrics_count(mt, "quire_gc_deleted_bytes_total", "bytes of segments deleted by GC", "",
                         out->bytes_deleted);
    quire__metrics_count(mt, "quire_gc_deleted_commits_total", "commit objects deleted by retention", "",
                         out->commits_deleted);
    quire__metrics_gauge(mt, "quire_gc_live_objects", "segments kept by the last GC pass", "",
                         (int64_t)out->objects_live);
    quire__metrics_gauge(mt, "quire_gc_live_bytes", "bytes of segments kept by the last GC pass", "",
                         (int64_t)out->bytes_live);
    quire__metrics_observe(mt, "quire_gc_pass_seconds", "GC pass duration", "",
                           (double)out->duration_ms / 1e3);
  }
  return rc;
}
