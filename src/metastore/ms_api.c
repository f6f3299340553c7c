/*
 * metastore/ms_api.c — the metastore's request messages: decode and validate
 * (every field, every splinter), run the core, encode the response. Shared by
 * the HTTP endpoints (ms_http.c) and the request fuzzers.
 *
 * Validation of a commit (DESIGN.md §8.3 step 3): ids of the right types,
 * every graft a valid non-empty splinter with no page 0 and nothing above
 * page_count, no segment id twice, and no page in two segments. A failure is
 * QUIRE_EINVAL with a message naming the segment and the problem. With a
 * receipt key, every segment must also carry the write receipt the
 * pagestore answered (core/receipt.h): QUIRE_EFORBIDDEN otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "gc/gc.h"
#include "metastore/ms_int.h"
#include "proto/metastore.pb-c.h"
#include "proto/pb.h"
#include "quire/splinter.h"
#include "util/alloc.h"
#include "util/err.h"

typedef Quire__Common__V1__Snapshot PbSnapshot;

static void fill_snapshot(const struct quire_snapshot *s, PbSnapshot *pb) {
  quire__common__v1__snapshot__init(pb);
  pb->has_vid = pb->has_lsn = pb->has_checkpoint_lsn = pb->has_page_count = 1;
  pb->has_timestamp_ms = pb->has_client_id = pb->has_commit_id = 1;
  pb->vid = quire__pb_gid_bytes(&s->vid);
  pb->lsn = s->lsn;
  pb->checkpoint_lsn = s->checkpoint_lsn;
  pb->page_count = s->page_count;
  pb->timestamp_ms = s->timestamp_ms;
  pb->client_id = quire__pb_gid_bytes(&s->client_id);
  pb->commit_id = quire__pb_gid_bytes(&s->commit_id);
  pb->has_flags = s->flags != 0;
  pb->flags = s->flags;
}

static int malformed(const char *what) { return quire__err(QUIRE_EINVAL, "malformed %s message", what); }

/* --- snapshot -------------------------------------------------------------- */

int quire__ms_handle_snapshot(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out) {
  Quire__Metastore__V1__SnapshotRequest *m =
      quire__metastore__v1__snapshot_request__unpack(&quire__pb_allocator, len, req);
  if (!m) return malformed("SnapshotRequest");
  quire_gid vid;
  quire_lsn lsn = m->has_lsn ? m->lsn : 0;
  int rc = quire__pb_gid(m->has_vid, &m->vid, QUIRE_GID_VOLUME, "vid", &vid);
  quire__metastore__v1__snapshot_request__free_unpacked(m, &quire__pb_allocator);
  if (rc) return rc;
  if (lsn == 0) {
    rc = quire__ms_refresh(ms, &vid, &lsn);
    if (rc) return rc;
    if (lsn == 0) return quire__err(QUIRE_ENOTFOUND, "volume has no commits");
  } else if ((rc = quire__ms_check_gone(ms, &vid, lsn)) != 0) {
    return rc;
  }
  quire_buf rec;
  quire__buf_init(&rec, QUIRE_COMMIT_MAX_SIZE);
  struct quire_snapshot snap;
  rc = quire__ms_load(ms, &vid, lsn, &rec, NULL, &snap);
  quire__buf_free(&rec);
  if (rc) return rc;
  PbSnapshot pbs;
  fill_snapshot(&snap, &pbs);
  Quire__Metastore__V1__SnapshotResponse resp = QUIRE__METASTORE__V1__SNAPSHOT_RESPONSE__INIT;
  resp.snapshot = &pbs;
  return quire__pb_pack(&resp.base, out);
}

/* --- fork (server side, docs/GC.md) ----------------------------------------- */

int quire__ms_handle_fork(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out) {
  Quire__Metastore__V1__ForkRequest *m = quire__metastore__v1__fork_request__unpack(&quire__pb_allocator, len, req);
  if (!m) return malformed("ForkRequest");
  quire_gid vid, dst;
  quire_lsn lsn = m->has_lsn ? m->lsn : 0;
  int rc = quire__pb_gid(m->has_vid, &m->vid, QUIRE_GID_VOLUME, "vid", &vid);
  quire__metastore__v1__fork_request__free_unpacked(m, &quire__pb_allocator);
  if (rc) return rc;
  if (lsn && (rc = quire__ms_check_gone(ms, &vid, lsn)) != 0) return rc;
  struct gc_checkpoint_opts o = {.store = ms->o.store};
  struct quire_snapshot snap;
  rc = quire__gc_fork(ms, &o, &vid, lsn, &dst, &snap);
  if (rc) return rc;
  PbSnapshot pbs;
  fill_snapshot(&snap, &pbs);
  Quire__Metastore__V1__ForkResponse resp = QUIRE__METASTORE__V1__FORK_RESPONSE__INIT;
  resp.snapshot = &pbs;
  return quire__pb_pack(&resp.base, out);
}

/* --- commit ---------------------------------------------------------------- */

/* With a receipt key: segment i of the commit must carry the receipt the
 * pagestore gave for (vid, sid, the graft written), and commit a subset of
 * that graft (all of it unless receipt_graft says what was written). */
static int check_receipt(const quire_metastore *ms, uint32_t i, const Quire__Common__V1__SegmentInfo *si,
                         const quire_gid *vid, const quire_gid *sid, const splinter_view_t *graft) {
  if (!si->has_receipt)
    return quire__err(
        QUIRE_EFORBIDDEN,
        "segment %u: no write receipt; this metastore only takes segments written by a pagestore "
        "that shares its receipt key (pass on the receipt write_pages answered)",
        i);
  const uint8_t *written = si->graft.data;
  size_t written_len = si->graft.len;
  if (si->has_receipt_graft) {
    splinter_view_t w;
    if (si->receipt_graft.len > UINT32_MAX ||
        splinter_view_open(si->receipt_graft.data, si->receipt_graft.len, &w))
      return quire__err(QUIRE_EINVAL, "segment %u: receipt_graft is not a valid splinter", i);
    if (!splinter_is_subset(splinter_ref_view(graft), splinter_ref_view(&w)))
      return quire__err(QUIRE_EFORBIDDEN, "segment %u: commits pages the segment was not written with", i);
    written = si->receipt_graft.data;
    written_len = si->receipt_graft.len;
  }
  if (quire__receipt_check(ms->o.receipt_key, vid, sid, written, written_len, si->receipt.data,
                           si->receipt.len) != 0) {
    char s[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(sid, s);
    return quire__err(QUIRE_EFORBIDDEN,
                      "segment %u: the write receipt does not match: segment %s was not written with these "
                      "pages of this volume by a pagestore sharing this metastore's receipt key",
                      i, s);
  }
  return 0;
}

atomic_uint_fast64_t quire__ms_sid_check_steps;

/* The first segment (lowest index) whose id an earlier segment has too, with
 * that earlier segment's index in *prev (the latest one before it); n if
 * none, UINT32_MAX - 1 when out of memory. A stable merge sort of the indices
 * by id, then one pass over neighbours: at most n * ceil(log2 n) comparisons
 * plus n, whatever ids a client chooses (no hash a hostile commit could aim
 * at one bucket); 65,536 segments take about 1.1 million steps where
 * comparing every pair took 2.1 billion. */
static uint32_t first_repeated_sid(const struct quire_commit_segment *segs, uint32_t n, uint32_t *prev) {
  if (n < 2) return n;
  uint32_t *a = quire__malloc(2 * (size_t)n * sizeof *a);
  if (!a) return UINT32_MAX - 1;
  uint32_t *b = a + n;
  uint64_t steps = 0;
  for (uint32_t i = 0; i < n; i++) a[i] = i;
  for (uint32_t w = 1; w < n; w *= 2) {
    for (uint32_t lo = 0; lo < n; lo += 2 * w) {
      uint32_t mid = lo + w < n ? lo + w : n, hi = mid + w < n ? mid + w : n;
      uint32_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        steps++;
        b[k++] = quire_gid_cmp(&segs[a[j]].sid, &segs[a[i]].sid) < 0 ? a[j++] : a[i++];
      }
      while (i < mid) b[k++] = a[i++];
      while (j < hi) b[k++] = a[j++];
    }
    uint32_t *t = a;
    a = b;
    b = t;
  }
  uint32_t first = n;
  for (uint32_t i = 1; i < n; i++) {
    steps++;
    if (a[i] < first && quire_gid_cmp(&segs[a[i - 1]].sid, &segs[a[i]].sid) == 0) {
      first = a[i];
      *prev = a[i - 1];
    }
  }
  atomic_fetch_add_explicit(&quire__ms_sid_check_steps, steps, memory_order_relaxed);
  quire__free(a < b ? a : b);
  return first;
}

atomic_uint_fast64_t quire__ms_overlap_check_steps;

/* The union of the grafts v[lo, hi) as a new set, merged as a balanced tree:
 * every page is merged about log2(hi - lo) times, where adding the grafts
 * one by one to a growing set re-merges that set each time (quadratic for a
 * commit of many small segments in different blocks). *steps grows by the
 * cardinalities merged. */
static int tree_union(const splinter_view_t *v, uint32_t lo, uint32_t hi, splinter_t **out, uint64_t *steps) {
  *out = NULL;
  splinter_t *a = NULL, *b = NULL;
  int rc;
  if (hi - lo == 1) {
    rc = splinter_new(&a);
    if (!rc) rc = splinter_union(splinter_ref_owned(a), splinter_ref_view(&v[lo]), a);
    *steps += splinter_view_cardinality(&v[lo]);
  } else {
    uint32_t mid = lo + (hi - lo) / 2;
    rc = tree_union(v, lo, mid, &a, steps);
    if (!rc) rc = tree_union(v, mid, hi, &b, steps);
    if (!rc) {
      *steps += splinter_cardinality(a) + splinter_cardinality(b);
      rc = splinter_union(splinter_ref_owned(a), splinter_ref_owned(b), a);
    }
    splinter_free(b);
  }
  if (rc) {
    splinter_free(a);
    return rc;
  }
  *out = a;
  return 0;
}

/* 1 when the grafts v[0, k) are pairwise disjoint: their union is as large
 * as their sizes added up (card[i] = |v[i]|). */
static int prefix_disjoint(const splinter_view_t *v, const uint64_t *card, uint32_t k, int *out,
                           uint64_t *steps) {
  uint64_t sum = 0;
  for (uint32_t i = 0; i < k; i++) sum += card[i];
  splinter_t *u;
  int rc = tree_union(v, 0, k, &u, steps);
  if (rc) return rc;
  *out = splinter_cardinality(u) == sum;
  splinter_free(u);
  return 0;
}

/* The lowest i < n whose graft shares a page with an earlier one, or n.
 * Disjointness of a prefix is monotone, so a binary search over prefixes
 * finds it: O(P log n) when the grafts are disjoint (P: their pages), a
 * log n factor more to name the culprit when they are not. */
static int first_overlap(const splinter_view_t *v, uint32_t n, uint32_t *first) {
  *first = n;
  if (n < 2) return 0;
  uint64_t *card = quire__malloc((size_t)n * sizeof *card), steps = 0;
  if (!card) return QUIRE_ENOMEM;
  for (uint32_t i = 0; i < n; i++) card[i] = splinter_view_cardinality(&v[i]);
  int disjoint = 1, rc = prefix_disjoint(v, card, n, &disjoint, &steps);
  if (!rc && !disjoint) {
    uint32_t lo = 1, hi = n; /* prefix lo is disjoint, prefix hi is not */
    while (!rc && hi - lo > 1) {
      uint32_t mid = lo + (hi - lo) / 2;
      rc = prefix_disjoint(v, card, mid, &disjoint, &steps);
      if (disjoint) lo = mid;
      else hi = mid;
    }
    *first = hi - 1;
  }
  atomic_fetch_add_explicit(&quire__ms_overlap_check_steps, steps, memory_order_relaxed);
  quire__free(card);
  return rc;
}

/* Validates the segments of a commit request into c->segments (allocated;
 * graft pointers into m). Errors name the lowest segment at fault, whether
 * by itself or by sharing pages with an earlier one. */
static int check_segments(const quire_metastore *ms, Quire__Metastore__V1__CommitRequest *m,
                          struct quire_commit *c) {
  if (m->n_segments > QUIRE_COMMIT_MAX_SEGMENTS)
    return quire__err(QUIRE_EINVAL, "%zu segments (max %u)", m->n_segments, QUIRE_COMMIT_MAX_SEGMENTS);
  c->nsegments = (uint32_t)m->n_segments;
  if (!c->nsegments) return 0;
  c->segments = quire__calloc(c->nsegments, sizeof *c->segments);
  if (!c->segments) return QUIRE_ENOMEM;
  /* Segment ids first (up to the first that does not parse; the loop below
   * reports that one in order), then the first repeated one among them. */
  uint32_t nsids = 0;
  for (; nsids < c->nsegments; nsids++) {
    Quire__Common__V1__SegmentInfo *si = m->segments[nsids];
    if (quire__pb_gid(si->has_sid, &si->sid, QUIRE_GID_SEGMENT, "sid", &c->segments[nsids].sid)) break;
  }
  quire__err_clear();
  uint32_t dup_prev = 0, dup = first_repeated_sid(c->segments, nsids, &dup_prev);
  if (dup == UINT32_MAX - 1) return QUIRE_ENOMEM;
  splinter_view_t *views = quire__calloc(c->nsegments, sizeof *views);
  if (!views) return QUIRE_ENOMEM;
  int rc = 0;
  uint32_t nvalid = 0; /* segments that passed every check of their own */
  for (uint32_t i = 0; i < c->nsegments && rc == 0; i++) {
    Quire__Common__V1__SegmentInfo *si = m->segments[i];
    struct quire_commit_segment *s = &c->segments[i];
    char field[48];
    snprintf(field, sizeof field, "segment %u: sid", i);
    rc = quire__pb_gid(si->has_sid, &si->sid, QUIRE_GID_SEGMENT, field, &s->sid);
    if (rc) break;
    if (i == dup) {
      rc = quire__err(QUIRE_EINVAL, "segment %u: same segment id as segment %u", i, dup_prev);
      break;
    }
    if (!si->has_graft || si->graft.len == 0) {
      rc = quire__err(QUIRE_EINVAL, "segment %u: graft is missing", i);
      break;
    }
    if (si->graft.len > UINT32_MAX) {
      rc = quire__err(QUIRE_EINVAL, "segment %u: graft too large", i);
      break;
    }
    splinter_view_t view;
    rc = splinter_view_open(si->graft.data, si->graft.len, &view);
    if (rc) {
      rc = quire__err(QUIRE_EINVAL, "segment %u: graft is not a valid splinter: %s", i, quire_errmsg());
      break;
    }
    uint32_t lo, hi;
    if (splinter_view_min(&view, &lo) != 0) {
      rc = quire__err(QUIRE_EINVAL, "segment %u: graft is empty", i);
      break;
    }
    splinter_view_max(&view, &hi);
    if (lo == 0) {
      rc = quire__err(QUIRE_EINVAL, "segment %u: graft holds page index 0", i);
      break;
    }
    if (hi > m->page_count) {
      rc = quire__err(QUIRE_EINVAL, "segment %u: page %u is above page_count %u", i, hi, m->page_count);
      break;
    }
    if (ms->o.receipt_key && (rc = check_receipt(ms, i, si, &c->vid, &s->sid, &view)) != 0) break;
    views[i] = view;
    nvalid = i + 1;
    s->graft = si->graft.data;
    s->graft_len = (uint32_t)si->graft.len;
  }
  /* Shared pages, among the segments before the first one at fault. */
  char why[256];
  snprintf(why, sizeof why, "%s", rc ? quire_errmsg() : "");
  uint32_t overlap;
  int orc = first_overlap(views, nvalid, &overlap);
  quire__free(views);
  if (orc) return orc;
  if (overlap < nvalid)
    return quire__err(QUIRE_EINVAL, "segment %u: shares pages with an earlier segment", overlap);
  if (rc) quire__err(rc, "%s", why);
  return rc;
}

int quire__ms_handle_commit(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out) {
  Quire__Metastore__V1__CommitRequest *m =
      quire__metastore__v1__commit_request__unpack(&quire__pb_allocator, len, req);
  if (!m) return malformed("CommitRequest");
  struct quire_commit c = {0};
  int rc = quire__pb_gid(m->has_vid, &m->vid, QUIRE_GID_VOLUME, "vid", &c.vid);
  if (!rc) rc = quire__pb_gid(m->has_client_id, &m->client_id, QUIRE_GID_CLIENT, "client_id", &c.client_id);
  if (!rc) rc = quire__pb_gid(m->has_commit_id, &m->commit_id, QUIRE_GID_COMMIT, "commit_id", &c.commit_id);
  if (!rc && !m->has_page_count) rc = quire__err(QUIRE_EINVAL, "page_count is missing");
  if (!rc && m->has_base_lsn && m->base_lsn == UINT64_MAX)
    rc = quire__err(QUIRE_EINVAL, "base_lsn out of range");
  if (!rc) rc = check_segments(ms, m, &c);
  if (rc) goto out;
  c.page_count = m->page_count;
  c.lsn = (m->has_base_lsn ? m->base_lsn : 0) + 1;
  struct quire_snapshot snap;
  rc = quire__ms_commit(ms, &c, &snap);
  if (rc) goto out;
  PbSnapshot pbs;
  fill_snapshot(&snap, &pbs);
  Quire__Metastore__V1__CommitResponse resp = QUIRE__METASTORE__V1__COMMIT_RESPONSE__INIT;
  resp.snapshot = &pbs;
  rc = quire__pb_pack(&resp.base, out);
out:
  quire__free(c.segments);
  quire__metastore__v1__commit_request__free_unpacked(m, &quire__pb_allocator);
  return rc;
}

/* --- pull_commits ---------------------------------------------------------- */

int quire__ms_handle_pull_commits(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out) {
  Quire__Metastore__V1__PullCommitsRequest *m =
      quire__metastore__v1__pull_commits_request__unpack(&quire__pb_allocator, len, req);
  if (!m) return malformed("PullCommitsRequest");
  quire_gid vid;
  int rc = quire__pb_gid(m->has_vid, &m->vid, QUIRE_GID_VOLUME, "vid", &vid);
  quire_lsn from = m->has_from_lsn ? m->from_lsn : 1, to = m->has_to_lsn ? m->to_lsn : UINT64_MAX;
  unsigned limit = m->has_limit && m->limit ? m->limit : 100;
  quire__metastore__v1__pull_commits_request__free_unpacked(m, &quire__pb_allocator);
  if (rc) return rc;
  if (from == 0) return quire__err(QUIRE_EINVAL, "from_lsn must be at least 1");
  if (to < from)
    return quire__err(QUIRE_EINVAL, "to_lsn %llu is before from_lsn %llu", (unsigned long long)to,
                      (unsigned long long)from);
  if (limit > ms->o.max_pull_commits) limit = ms->o.max_pull_commits;
  quire_lsn latest;
  rc = ms_catalog_latest(ms->o.catalog, &vid, &latest);
  if (!rc && latest < to) {
    rc = quire__ms_refresh(ms, &vid, &latest);
    /* A broken volume serves closed ranges below the break; an open range
     * would pass a shortened log off as the whole. */
    if (rc == QUIRE_ECORRUPT && to != UINT64_MAX && to <= latest) rc = 0;
  }
  if (rc) return rc;
  if (from > latest + 1)
    return quire__err(QUIRE_ENOTFOUND, "from_lsn %llu is past the latest lsn %llu + 1",
                      (unsigned long long)from, (unsigned long long)latest);
  /* Below the base: the retained part of the range (it starts at a
   * checkpoint, so the pages read from there on are complete). */
  quire_lsn base;
  if ((rc = quire__ms_base(ms, &vid, QUIRE_MS_BASE_TTL_MS, &base)) != 0) return rc;
  if (from < base) {
    if (to < base) return quire__ms_gone(&vid, to, base);
    from = base;
  }
  if (to > latest) to = latest;
  quire_lsn end = to >= from ? QUIRE_MIN(to, from + limit - 1) : from - 1;
  size_t n = (size_t)(end + 1 - from);
  /* Records stay in bufs[] until the response is packed. */
  quire_buf *bufs = quire__calloc(n ? n : 1, sizeof *bufs);
  struct quire_commit *recs = quire__calloc(n ? n : 1, sizeof *recs);
  PbSnapshot *snaps = quire__calloc(n ? n : 1, sizeof *snaps);
  struct quire_snapshot *qs = quire__calloc(n ? n : 1, sizeof *qs);
  Quire__Common__V1__Commit *commits = quire__calloc(n ? n : 1, sizeof *commits);
  Quire__Common__V1__Commit **cptrs = quire__calloc(n ? n : 1, sizeof *cptrs);
  size_t done = 0, bytes = 0, nsegs = 0;
  if (!bufs || !recs || !snaps || !qs || !commits || !cptrs) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  for (; done < n; done++) {
    quire__buf_init(&bufs[done], QUIRE_COMMIT_MAX_SIZE);
    rc = quire__ms_load(ms, &vid, from + done, &bufs[done], &recs[done], &qs[done]);
    if (rc) goto out;
    if (done > 0 && bytes + bufs[done].len > ms->o.max_pull_bytes) {
      quire__commit_clear(&recs[done]);
      quire__buf_free(&bufs[done]);
      break;
    }
    bytes += bufs[done].len;
    nsegs += recs[done].nsegments;
  }
  Quire__Common__V1__SegmentInfo *infos = quire__calloc(nsegs ? nsegs : 1, sizeof *infos);
  Quire__Common__V1__SegmentInfo **iptrs = quire__calloc(nsegs ? nsegs : 1, sizeof *iptrs);
  if (!infos || !iptrs) {
    quire__free(infos);
    quire__free(iptrs);
    rc = QUIRE_ENOMEM;
    goto out;
  }
  size_t si = 0;
  for (size_t i = 0; i < done; i++) {
    fill_snapshot(&qs[i], &snaps[i]);
    quire__common__v1__commit__init(&commits[i]);
    commits[i].snapshot = &snaps[i];
    commits[i].n_segments = recs[i].nsegments;
    commits[i].segments = &iptrs[si];
    for (uint32_t k = 0; k < recs[i].nsegments; k++, si++) {
      quire__common__v1__segment_info__init(&infos[si]);
      infos[si].has_sid = infos[si].has_graft = 1;
      infos[si].sid = quire__pb_gid_bytes(&recs[i].segments[k].sid);
      infos[si].graft.data = (uint8_t *)recs[i].segments[k].graft;
      infos[si].graft.len = recs[i].segments[k].graft_len;
      iptrs[si] = &infos[si];
    }
    cptrs[i] = &commits[i];
  }
  Quire__Metastore__V1__PullCommitsResponse resp = QUIRE__METASTORE__V1__PULL_COMMITS_RESPONSE__INIT;
  resp.n_commits = done;
  resp.commits = cptrs;
  resp.has_latest_lsn = 1;
  resp.latest_lsn = latest;
  if (from + done <= to) {
    resp.has_next_lsn = 1;
    resp.next_lsn = from + done;
  }
  rc = quire__pb_pack(&resp.base, out);
  quire__free(infos);
  quire__free(iptrs);
out:
  for (size_t i = 0; bufs && recs && i < done; i++) {
    quire__commit_clear(&recs[i]);
    quire__buf_free(&bufs[i]);
  }
  if (rc && bufs && done < n) quire__buf_free(&bufs[done]);
  quire__free(bufs);
  quire__free(recs);
  quire__free(snaps);
  quire__free(qs);
  quire__free(commits);
  quire__free(cptrs);
  return rc;
}

/* --- pull_graft ------------------------------------------------------------ */

struct pull_graft_req {
  quire_gid vid;
  quire_lsn from, to; /* to 0 = open */
  unsigned wait_ms;
};

static int decode_pull_graft(const uint8_t *req, size_t len, struct pull_graft_req *out) {
  Quire__Metastore__V1__PullGraftRequest *m =
      quire__metastore__v1__pull_graft_request__unpack(&quire__pb_allocator, len, req);
  if (!m) return malformed("PullGraftRequest");
  int rc = quire__pb_gid(m->has_vid, &m->vid, QUIRE_GID_VOLUME, "vid", &out->vid);
  out->from = m->has_from_lsn ? m->from_lsn : 0;
  out->to = m->has_to_lsn ? m->to_lsn : 0;
  out->wait_ms = m->has_wait_ms ? m->wait_ms : 0;
  if (!rc && m->has_to_lsn && m->to_lsn < out->from)
    rc = quire__err(QUIRE_EINVAL, "to_lsn %llu is before from_lsn %llu", (unsigned long long)out->to,
                    (unsigned long long)out->from);
  if (!rc && m->has_to_lsn && m->to_lsn == 0) rc = quire__err(QUIRE_EINVAL, "to_lsn 0");
  quire__metastore__v1__pull_graft_request__free_unpacked(m, &quire__pb_allocator);
  return rc;
}

/* Answers r into out. *nothing_new = 1 when the range is empty (the caller
 * may long-poll instead). With trust_catalog, an open range ends at the
 * catalog's latest without asking the store (the poll loop does that). */
static int answer_pull_graft(quire_metastore *ms, const struct pull_graft_req *r, int trust_catalog,
                             quire_buf *out, int *nothing_new) {
  *nothing_new = 0;
  quire_lsn latest;
  int rc = ms_catalog_latest(ms->o.catalog, &r->vid, &latest);
  /* Ask the store unless the catalog is known to be fresh enough; a client
   * that has seen more than the catalog holds always makes us look. */
  int look = r->to ? latest < r->to : (!trust_catalog || r->from > latest);
  if (!rc && look) {
    rc = quire__ms_refresh(ms, &r->vid, &latest);
    if (rc == QUIRE_ECORRUPT && r->to && r->to <= latest) rc = 0; /* below the break */
  } else if (!rc && !r->to) {
    rc = quire__ms_broken(ms, &r->vid); /* "the latest" of a broken log is unknown */
  }
  if (rc) return rc;
  if (r->to && r->to > latest)
    return quire__err(QUIRE_ENOTFOUND, "to_lsn %llu is past the latest lsn %llu", (unsigned long long)r->to,
                      (unsigned long long)latest);
  if (r->from > latest)
    return quire__err(QUIRE_ENOTFOUND, "from_lsn %llu is past the latest lsn %llu",
                      (unsigned long long)r->from, (unsigned long long)latest);
  quire_lsn end = r->to ? r->to : latest;
  if (end == r->from) *nothing_new = 1;
  /* A bounded answer: the response's to_lsn says how far it got. */
  if (end - r->from > ms->o.max_graft_commits) end = r->from + ms->o.max_graft_commits;
  if (latest == 0) return quire__err(QUIRE_ENOTFOUND, "volume has no commits");
  /* A client behind the base: the commits in between are gone, so the
   * answer is a superset: every page of the checkpoint at the base (what
   * the volume holds there) plus what changed after it. */
  quire_lsn base, start = r->from + 1;
  if ((rc = quire__ms_base(ms, &r->vid, QUIRE_MS_BASE_TTL_MS, &base)) != 0) return rc;
  if (end < base) return quire__ms_gone(&r->vid, end, base);
  if (start < base) start = base;
  splinter_t *acc = NULL;
  uint8_t *bytes = NULL;
  size_t nbytes = 0;
  quire_buf rec;
  quire__buf_init(&rec, QUIRE_COMMIT_MAX_SIZE);
  struct quire_snapshot snap;
  quire_pagecount min_count = UINT32_MAX;
  rc = splinter_new(&acc);
  for (quire_lsn l = start; rc == 0 && l <= end; l++) {
    struct quire_commit c;
    rc = quire__ms_load(ms, &r->vid, l, &rec, &c, NULL);
    if (rc) break;
    if (c.page_count < min_count) min_count = c.page_count;
    /* A rewrite (a checkpoint) changes no page's content, unless the
     * client is behind it (then it stands for what was deleted). */
    int stands_in = r->from + 1 < base && l == base;
    uint32_t nseg = (c.flags & QUIRE_COMMIT_F_REWRITE) && !stands_in ? 0 : c.nsegments;
    for (uint32_t i = 0; rc == 0 && i < nseg; i++) {
      splinter_view_t v;
      rc = splinter_view_open(c.segments[i].graft, c.segments[i].graft_len, &v);
      if (rc)
        rc = quire__err(QUIRE_ECORRUPT, "lsn %llu segment %u: %s", (unsigned long long)l, i, quire_errmsg());
      if (!rc) rc = splinter_union(splinter_ref_owned(acc), splinter_ref_view(&v), acc);
    }
    quire__commit_clear(&c);
  }
  if (!rc) rc = quire__ms_load(ms, &r->vid, end, &rec, NULL, &snap);
  if (!rc) rc = splinter_serialize_alloc(acc, &bytes, &nbytes);
  if (!rc) {
    PbSnapshot pbs;
    fill_snapshot(&snap, &pbs);
    Quire__Metastore__V1__PullGraftResponse resp = QUIRE__METASTORE__V1__PULL_GRAFT_RESPONSE__INIT;
    resp.snapshot = &pbs;
    resp.has_from_lsn = resp.has_to_lsn = resp.has_graft = 1;
    resp.from_lsn = r->from;
    resp.to_lsn = end;
    resp.graft.data = bytes;
    resp.graft.len = nbytes;
    resp.has_min_page_count = end > r->from;
    resp.min_page_count = min_count;
    rc = quire__pb_pack(&resp.base, out);
  }
  splinter_bytes_free(bytes);
  splinter_free(acc);
  quire__buf_free(&rec);
  return rc;
}

int quire__ms_handle_pull_graft(quire_metastore *ms, const uint8_t *req, size_t len, quire_buf *out) {
  struct pull_graft_req r;
  int rc = decode_pull_graft(req, len, &r);
  if (rc) return rc;
  int nothing_new;
  return answer_pull_graft(ms, &r, 0, out, &nothing_new);
}

/* The HTTP form: with wait_ms and nothing new, park until there is. Returns
 * 1 when parked (no answer yet). */
int quire__ms_http_pull_graft(quire_metastore *ms, quire_http_req *hr, const uint8_t *req, size_t len,
                              quire_buf *out);
int quire__ms_http_pull_graft(quire_metastore *ms, quire_http_req *hr, const uint8_t *req, size_t len,
                              quire_buf *out) {
  struct pull_graft_req r;
  int rc = decode_pull_graft(req, len, &r);
  if (rc) return rc;
  int nothing_new = 0;
  for (;;) {
    quire__buf_reset(out);
    /* A woken waiter, or a new one on a volume whose loop just polled, needs
     * no GET of its own: one loop per volume does the polling. */
    int trust = r.wait_ms > 0 && (quire__http_req_resumed(hr) || quire__ms_polled_recently(ms, &r.vid));
    rc = answer_pull_graft(ms, &r, trust, out, &nothing_new);
    int can_wait = r.wait_ms > 0 && r.to == 0 && !quire__http_req_resumed(hr);
    /* An empty volume is worth waiting on too. */
    if (rc == QUIRE_ENOTFOUND && can_wait && r.from == 0) {
      quire_lsn latest = 0;
      ms_catalog_latest(ms->o.catalog, &r.vid, &latest);
      if (latest == 0) nothing_new = 1, rc = 0;
    }
    if (rc || !nothing_new || !can_wait) return rc;
    int w = quire__ms_wait(ms, &r.vid, r.from, r.wait_ms, hr);
    if (w == 1) return 1;
    if (w < 0) return w == QUIRE_ECLOSED ? answer_pull_graft(ms, &r, 1, out, &nothing_new) : w;
    /* A commit landed between the answer and the wait: answer again. */
  }
}
