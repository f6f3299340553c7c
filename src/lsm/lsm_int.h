/*
 * lsm/lsm_int.h — internals of the LSM engine shared by its files.
 *
 *   file.c    POSIX file layer, page cache, header slots, free space, blobs
 *   page.c    leaf/parent page parsing and the one-pass segment builder
 *   segcur.c  single-segment cursor
 *   mem.c     skiplist memtable (also the transaction buffer)
 *   cursor.c  multi-cursor (newest wins) and living cursor (hides deletes)
 *   db.c      the handle: open/recovery, close, failures, messages, stats
 *   version.c versions, snapshots, limbo
 *   header.c  header slots, saving/loading/rebuilding the free list
 *   log.c     the commit log: format, writer, group sync, erase, replay
 *   txn.c     transactions (buffer, spill, reads)
 *   commit.c  commit and flush
 *   point.c   point reads: lsm_get, lsm_get_seek
 *   levels.c  merge scheduling, threads, backpressure, compact
 *   merge.c   partial merges; merge_full.c whole-segment merges
 *   vacuum.c  lsm_vacuum
 *   check.c   reachability walk, free-list rebuild, `lsm check`
 *
 * Formats are tabled at the top of file.c (header, blobs) and page.c (pages)
 * and in docs/LSM.md. Lock order: db->commit_lock, then db->merge_mu, then
 * db->lock, then the page cache's lock; db->sync_mu and db->fsync_mu come
 * after commit_lock and are never held together with db->lock or each other;
 * db->fail_mu is a leaf. Readers take db->lock only to pin or unpin a
 * version.
 */
#ifndef QUIRE_LSM_INT_H
#define QUIRE_LSM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "quire/lsm_vfs.h"
#include "quire/lsm.h"
#include "util/util.h"

#define LSM_FORMAT_VERSION 1u
#define LSM_MAGIC "QUIRELSM"
#define LSM_SLOT_SIZE 1024u
#define LSM_TRAILER 8u /* page checksum, last 8 bytes of every page but page 1 */
#define LSM_PAGE_LEAF 1u
#define LSM_PAGE_PARENT 2u
#define LSM_PAGE_HDR 6u /* type, depth/flags, u16 n, u16 prefix length */
#define LSM_MAX_DEPTH 20
#define LSM_MAX_SEGS 80 /* segments in the header (Incoming + Waiting + Regular) */
#define LSM_MAX_INCOMING 32
#define LSM_MAX_WAITING 32
#define LSM_MAX_REGULAR 16
#define LSM_MAX_BATCH 8    /* Waiting segments merged into Regular 0 together (one pass of partial merges) */
#define LSM_WAIT_TRIGGER 4 /* a pass starts once this many wait (or max_incoming, if lower) */
#define LSM_SEQ_OWN UINT64_MAX

#define LSM_HDR_NOCHECKSUM 1u
#define LSM_HDR_FREE_EXACT 2u /* the saved free list accounts for every page */

/* Value kinds of a leaf item. LSM_V_SPLIT: the value's whole pages live on an
 * overflow run and its last vlen % usable bytes (1..LSM_TAIL_MAX) inline in
 * the leaf, so a 4 KiB value takes one page, not two. */
enum { LSM_V_INLINE = 0, LSM_V_OVERFLOW = 1, LSM_V_TOMB = 2, LSM_V_SPLIT = 3 };
#define LSM_TAIL_MAX 255

typedef struct lsm_ext {
  uint32_t start, count;
} lsm_ext;

typedef struct lsm_extv {
  lsm_ext *v;
  size_t n, cap;
} lsm_extv;

int lsm__extv_push(lsm_extv *x, uint32_t start, uint32_t count);
void lsm__extv_free(lsm_extv *x);
/* Inserts [start, start+count) into a sorted, coalesced list. */
int lsm__extv_insert(lsm_extv *x, uint32_t start, uint32_t count);
uint64_t lsm__extv_pages(const lsm_extv *x);
/* Sorts by start page and joins runs that touch (overlapping runs are kept
 * apart, so a check can still see them). */
void lsm__extv_sort(lsm_extv *x);
/* out += the pages of a not in b (both sorted, as lsm__extv_sort leaves them). */
int lsm__extv_subtract(const lsm_extv *a, const lsm_extv *b, lsm_extv *out);

/* ---- page cache -------------------------------------------------------- */
typedef struct lsm_page {
  uint32_t pgno;
  int refs;
  uint8_t hashed, in_lru, hot;
  struct lsm_page *hnext, *prev, *next; /* hash chain; eviction list */
  uint8_t *data;
} lsm_page;

typedef struct lsm_cache {
  pthread_mutex_t mu; /* protects everything here */
  lsm_page **buckets;
  size_t nbuckets;
  size_t bytes, budget;
  lsm_page lru; /* sentinel of the eviction list (second-chance / CLOCK order) */
  uint64_t hits, misses;
} lsm_cache;

/* ---- header ------------------------------------------------------------ */
typedef struct lsm_segdesc {
  uint32_t root, rt_page, rt_len;
} lsm_segdesc;

typedef struct lsm_hdr {
  uint32_t version, pgsz, reserve, flags, npages, block_pages;
  uint64_t generation, change_counter, merge_counter, file_id;
  uint32_t wal_start, wal_pages;
  uint64_t wal_epoch;
  uint32_t fl_page, fl_len, fl_free;
  uint32_t n_in, n_wait, n_reg;
  lsm_segdesc seg[LSM_MAX_SEGS]; /* Incoming, then Waiting, then Regular (root 0 = empty) */
} lsm_hdr;

/* ---- range tombstones -------------------------------------------------- */
typedef struct lsm_range {
  const uint8_t *lo, *hi;
  uint32_t lol, hil;
} lsm_range;

/* ---- segments ---------------------------------------------------------- */
typedef struct lsm_seg {
  atomic_int refs;
  lsm_segdesc d;
  lsm_range *ranges; /* sorted by lo, disjoint */
  size_t nranges;
  uint8_t *range_blob;
  lsm_extv pages; /* pending (uncommitted) segments of a transaction: every page it owns */
  /* Filled by lsm__seg_load from the root and the leftmost path (root 0: all 0). */
  uint64_t leaves, tombs;   /* leaf pages and point tombstones in the tree */
  uint32_t depth;           /* 0: the root is a leaf */
  uint8_t *minkey, *maxkey; /* first and last key of the tree (NULL when root 0) */
  uint32_t minlen, maxlen;
} lsm_seg;

/* ---- memtable ---------------------------------------------------------- */
#define LSM_MEM_MAXH 16
typedef struct lsm_mnode {
  const uint8_t *key, *val;
  uint64_t seq;
  uint32_t klen;
  uint32_t vlen;
  uint8_t kind, height;
  _Atomic(struct lsm_mnode *) next[];
} lsm_mnode;

typedef struct lsm_mrange {
  _Atomic(struct lsm_mrange *) next;
  uint64_t seq;
  lsm_range r;
} lsm_mrange;

typedef struct lsm_chunk {
  struct lsm_chunk *next;
  size_t used, cap;
  _Alignas(16) uint8_t data[];
} lsm_chunk;

typedef struct lsm_mem {
  atomic_int refs;
  lsm_mnode *head;
  _Atomic(lsm_mrange *) ranges;
  atomic_int height;
  lsm_chunk *chunks;
  size_t bytes; /* arena bytes in use */
  uint64_t entries, nranges;
  uint64_t rng;
  uint32_t nchunks;
} lsm_mem;

int lsm__mem_new(lsm_mem **out);
void lsm__mem_ref(lsm_mem *m);
void lsm__mem_unref(lsm_mem *m);
/* Bytes of arena an insert of these lengths needs (upper bound). */
size_t lsm__mem_need(size_t klen, size_t vlen);
/* Makes sure need more bytes can be inserted without allocation failure. */
int lsm__mem_reserve(lsm_mem *m, size_t need);
/* Single writer. Copies key and value. Fails only with ENOMEM (never after a
 * successful lsm__mem_reserve covering it). */
int lsm__mem_put(lsm_mem *m, const void *k, size_t kl, int kind, const void *v, size_t vl, uint64_t seq);
int lsm__mem_range(lsm_mem *m, const void *lo, size_t lol, const void *hi, size_t hil, uint64_t seq);
/* Newest version of k with seq <= snap; NULL if none. */
lsm_mnode *lsm__mem_find(lsm_mem *m, const void *k, size_t kl, uint64_t snap);
/* 1 if a range with after < seq <= snap covers k. */
int lsm__mem_covered(lsm_mem *m, const void *k, size_t kl, uint64_t after, uint64_t snap);
/* First node >= (k, snap) in (key asc, seq desc) order; k NULL = first. */
lsm_mnode *lsm__mem_seek(lsm_mem *m, const void *k, size_t kl, uint64_t snap);
/* Last node with key < k (k NULL = last node). */
lsm_mnode *lsm__mem_seek_lt(lsm_mem *m, const void *k, size_t kl);
/* From node n (any version), the newest version visible at snap of n's key
 * or a later key. */
lsm_mnode *lsm__mem_visible(lsm_mnode *n, uint64_t snap);
/* Newest version visible at snap of the largest key < k (k NULL: of any). */
lsm_mnode *lsm__mem_before(lsm_mem *m, const void *k, size_t kl, uint64_t snap);
/* Newest version visible at snap of the nearest key to k: op LSM_SEEK_LE
 * (largest key <= k, or < k without incl) or LSM_SEEK_GE (smallest >= k /
 * > k). NULL if none. */
lsm_mnode *lsm__mem_near(lsm_mem *m, const void *k, size_t kl, int op, int incl, uint64_t snap);
/* A range with after < seq <= snap covering k, or NULL. */
const lsm_mrange *lsm__mem_covering(lsm_mem *m, const void *k, size_t kl, uint64_t after, uint64_t snap);
static inline lsm_mnode *lsm__mnext(lsm_mnode *n) {
  return atomic_load_explicit(&n->next[0], memory_order_acquire);
}

/* memcmp order, the shorter first on a tie. Inline, eight bytes at a time
 * (big-endian loads compare like memcmp): keys are short and this runs in
 * every skiplist step, page search and multi-cursor step, where a call to
 * memcmp cost more than the comparison. */
static inline int lsm__keycmp(const void *a, size_t al, const void *b, size_t bl) {
  const uint8_t *x = a, *y = b;
  size_t n = al < bl ? al : bl, i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t u = ld_be64(x + i), v = ld_be64(y + i);
    if (u != v) return u < v ? -1 : 1;
  }
  for (; i < n; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return al < bl ? -1 : al > bl;
}
/* Compare k against the split key prefix|suffix. */
int lsm__keycmp2(const uint8_t *k, size_t kl, const uint8_t *p, size_t pl, const uint8_t *s, size_t sl);

/* ---- versions ---------------------------------------------------------- */
typedef struct lsm_version {
  atomic_int refs;
  uint64_t vid;                      /* creation order */
  struct lsm_version *vprev, *vnext; /* db->live, oldest first (db->lock) */
  lsm_mem *mem;
  /* segs: Incoming newest first [0, n_in), Waiting newest first [n_in,
   * n_in+n_wait), then Regular 0.. (n_reg entries, may be NULL) */
  uint32_t n_in, n_wait, n_reg;
  lsm_seg *segs[LSM_MAX_SEGS];
} lsm_version;

/* lsm__alloc's choice (db->alloc_mode): first fit by address for `want`
 * pages, else the largest run (normal); the lowest run of at least `min`
 * (packing the front of the file); always the end of the file (a copy that
 * must land past every live page). */
enum { LSM_ALLOC_NORMAL, LSM_ALLOC_LOWEST, LSM_ALLOC_END };

static inline uint32_t lsm__vcount(const lsm_version *v) { return v->n_in + v->n_wait + v->n_reg; }

/* Pages a merge stopped reaching: reusable once every version up to vid is
 * released (an older snapshot may still walk them). */
typedef struct lsm_limbo {
  struct lsm_limbo *next;
  uint64_t vid;
  lsm_extv pages;
} lsm_limbo;

/* ---- the database ------------------------------------------------------ */
struct lsm_db {
  lsm_file *file;
  uint32_t pgsz, usable, reserve, klim, vinline;
  uint32_t wal_start, wal_pages; /* fixed at creation; readers use these, not hdr */
  int checksums, sync_mode, read_only;
  uint32_t block_pages;
  size_t txn_budget, mem_budget;
  unsigned max_incoming;

  pthread_mutex_t commit_lock; /* serialises commits, flushes, merges, header writes */
  pthread_mutex_t lock;        /* protects cur, free space, zombies, the seq below */
  lsm_version *cur;
  uint64_t visible_seq; /* newest commit readers may see (lock) */

  /* Group commit (FULL): committers write their log record under the commit
   * lock, then share one fdatasync outside it. sync_mu protects these (after
   * commit_lock and lock in the lock order). Offsets are into the log of the
   * current epoch; log_gen counts epochs, so a sync that started in an older
   * one does not move ack_off. */
  pthread_mutex_t sync_mu;
  pthread_cond_t sync_cv;
  uint64_t written_seq, written_off; /* newest record written to the log, and its end */
  uint64_t synced_seq;               /* newest commit known durable */
  uint64_t ack_off;                  /* end of the acknowledged records: nothing before it is erased */
  uint64_t full_seq;                 /* newest record of a FULL commit */
  uint64_t log_gen;
  int syncing;

  /* The first write, sync or truncate that failed (docs/LSM.md "When a write
   * fails"): from then on every commit, flush and merge is refused until the
   * database is reopened. fatal is set once, with fail_mu held (a leaf lock);
   * fsync_mu serialises syncs, so a sync that succeeds after one that failed
   * finds fatal set. */
  atomic_int fatal; /* 0, or the error of the failure */
  pthread_mutex_t fail_mu;
  char fatal_msg[200];
  pthread_mutex_t fsync_mu;
  int log_erased;     /* commit_lock: the unacknowledged log tail was zeroed */
  uint64_t wal_dirty; /* commit_lock: end of every log byte written or attempted in this epoch */
  uint64_t wal_stale; /* commit_lock: end of earlier epochs' log bytes (punched by the next epoch) */

  /* commit_lock */
  lsm_hdr hdr;        /* as last written */
  uint64_t last_seq;  /* newest commit (in the log or segments) */
  uint64_t wal_off;   /* append position in the log region */
  uint64_t wal_chain; /* checksum of the last record: seeds the next */
  uint64_t *conflict; /* last commit seq per key-hash bucket */
  uint64_t range_seq; /* last commit with a range delete */

  /* lock */
  atomic_uint npages; /* file end in pages */
  lsm_extv free;      /* reusable now */
  int alloc_mode;     /* lsm_compact packing: LSM_ALLOC_* (how lsm__alloc picks a run) */
  lsm_extv pending;   /* freed by the next header write */
  lsm_limbo *limbo;   /* freed by merges, waiting for old versions to go */
  lsm_version *live;  /* every version not yet released, oldest first */
  uint64_t next_vid;
  uint64_t inflight; /* pages held by uncommitted pending segments */

  /* merges (levels.c); merge_mu after commit_lock, before lock */
  pthread_mutex_t merge_mu;
  pthread_cond_t merge_cv; /* work for the threads, progress for waiters */
  pthread_t merge_thr[8];
  unsigned merge_nthr;
  int merge_mode; /* 0 threads, 1 inline, 2 off */
  int merge_stop, merge_pause, merge_running, merge_due, merge_err;
  uint8_t busy[2 + LSM_MAX_REGULAR];  /* 0 Incoming, 1 Waiting, 2+n Regular n */
  uint8_t *cptr[2 + LSM_MAX_REGULAR]; /* compaction pointer of each source level */
  uint32_t cptrlen[2 + LSM_MAX_REGULAR];
  unsigned level_factor;
  uint64_t level0_bytes;
  uint32_t promote_leaves;
  uint32_t wait_batch;        /* the Waiting job's: segments left in the pass under way (0: none) */
  uint32_t wait_trigger;      /* a pass into Regular 0 starts when this many segments wait */
  atomic_int merges_building; /* merges with written, uncommitted pages */

  void (*log_fn)(void *ctx, int level, const char *msg); /* lsm_options.log_fn (may be NULL) */
  void *log_ctx;

  lsm_cache cache;
  uint8_t *scratch; /* one page, commit_lock */
  atomic_ullong st_commits, st_flushes, st_merges, st_syncs, st_hdr, st_conflicts;
  atomic_ullong st_moved, st_full, st_partial, st_mwritten, st_recycled, st_tdropped, st_merrors, st_batched;
  atomic_ullong st_stalls, st_stall_us, st_bytes;
};

static inline int lsm__is_ovf(int kind) { return kind == LSM_V_OVERFLOW || kind == LSM_V_SPLIT; }
/* Bytes of a value that live on its overflow run. */
static inline uint64_t lsm__run_bytes(const lsm_db *db, int kind, uint64_t vlen) {
  return kind == LSM_V_SPLIT ? vlen - vlen % db->usable : vlen;
}
/* Reads [off, off+n) of an overflow or split value (run at ovf, tail inline). */
int lsm__value_read(lsm_db *db, int kind, uint32_t ovf, const uint8_t *tail, uint64_t vlen, uint64_t off,
                    uint8_t *buf, size_t n);

/* file.c */
int lsm__cache_init(lsm_cache *c, size_t budget, uint32_t pgsz);
void lsm__cache_destroy(lsm_cache *c);
/* Pinned, checksum-verified page; release with lsm__page_put. */
int lsm__page_get(lsm_db *db, uint32_t pgno, lsm_page **out);
void lsm__page_put(lsm_db *db, lsm_page *p);
/* One more pin on a page already pinned (release with lsm__page_put). */
void lsm__page_ref(lsm_db *db, lsm_page *p);
void lsm__cache_forget(lsm_db *db, uint32_t start, uint32_t count);
void lsm__page_seal(lsm_db *db, uint8_t *page, uint32_t pgno);
int lsm__page_verify(lsm_db *db, const uint8_t *page, uint32_t pgno);
/* Reads count raw pages at pgno into buf and verifies each. */
int lsm__read_pages(lsm_db *db, uint32_t pgno, uint32_t count, uint8_t *buf);
/* Seals and writes count pages from buf at pgno. */
int lsm__write_pages(lsm_db *db, uint32_t pgno, uint32_t count, uint8_t *buf);
int lsm__hdr_encode(const lsm_hdr *h, uint8_t *slot);
int lsm__hdr_decode(const uint8_t *slot, lsm_hdr *h);
int lsm__alloc(lsm_db *db, uint32_t min, uint32_t want, lsm_ext *out);
void lsm__free_now(lsm_db *db, uint32_t start, uint32_t count);
/* Blobs: bytes stored across a run of pages (usable bytes of each). */
uint32_t lsm__blob_pages(const lsm_db *db, uint64_t len);
int lsm__blob_write(lsm_db *db, const uint8_t *p, size_t len, lsm_extv *used, uint32_t *first);
int lsm__blob_read(lsm_db *db, uint32_t first, uint64_t off, uint8_t *buf, size_t n);
int lsm__check_run(lsm_db *db, uint32_t first, uint64_t len);

/* page.c */
typedef struct lsm_pview {
  const uint8_t *p;
  uint32_t type, depth, n, plen;
  const uint8_t *prefix;
} lsm_pview;
typedef struct lsm_item {
  const uint8_t *suf;
  uint32_t slen;
  int kind;
  const uint8_t *val; /* inline value, or the tail of an LSM_V_SPLIT value */
  uint64_t vlen;
  uint32_t ovf;
  uint64_t child, leaves, tombs; /* parents */
} lsm_item;
int lsm__pview(const lsm_db *db, const uint8_t *page, lsm_pview *v);
int lsm__pitem(const lsm_db *db, const lsm_pview *v, uint32_t i, lsm_item *it);
/* Offset just past a parsed item (its key suffix, value or child fields). */
size_t lsm__item_end(const lsm_db *db, const lsm_pview *v, const lsm_item *it);
/* Index of the first item >= k (n if none); *eq set on an exact match. */
int lsm__psearch(const lsm_db *db, const lsm_pview *v, const uint8_t *k, size_t kl, uint32_t *idx, int *eq);

typedef struct lsm_builder lsm_builder;
int lsm__build_new(lsm_db *db, lsm_builder **out);
/* Keys strictly ascending (QUIRE_EINVAL otherwise). kind LSM_V_*. */
int lsm__build_add(lsm_builder *b, const void *k, size_t kl, int kind, const void *v, size_t vl);
int lsm__build_ranges(lsm_builder *b, const lsm_range *r, size_t n);
/* Adds a leaf item whose value already lives in an overflow run (moved by
 * reference, never copied): the run starting at page ovf holds vlen bytes
 * (tail NULL), or all but the last vlen % usable, which are at tail. */
int lsm__build_add_ref(lsm_builder *b, const void *k, size_t kl, uint64_t vlen, uint32_t ovf,
                       const uint8_t *tail);
/* Recycles an existing subtree by reference: `page` is the root of a subtree
 * of the given depth (0 = a leaf) whose last key is k and which holds
 * `leaves` leaves and `tombs` point tombstones. Its keys must all be greater
 * than every key added so far. Whatever is pending at depths 0..depth is
 * written out first (so call lsm__build_clean first to avoid thin pages). */
int lsm__build_add_child(lsm_builder *b, uint32_t depth, const void *k, size_t kl, uint32_t page,
                         uint64_t leaves, uint64_t tombs);
/* 1 if recycling a subtree of this depth now would write no page less than
 * half full (every pending page at depths 0..depth is empty or >= half). */
int lsm__build_clean(const lsm_builder *b, uint32_t depth);
/* Writes out the pending page at `depth` (and the empty-or-half-full ones
 * below it) early when `rest` more bytes of items (offsets and items, no
 * page header) will follow at this depth and the two would overflow one page
 * but leave a thin tail if the pending page were filled first: cut at the
 * balance point instead, both pages at least about half full. Call before
 * each item while copying a page. 1 if it wrote, 0 if not, or an error. */
int lsm__build_split(lsm_builder *b, uint32_t depth, size_t rest);
/* Finishes; *d gets the segment (root 0 if nothing was added); every page
 * written is appended to pages (may be NULL). Frees b. */
int lsm__build_finish(lsm_builder *b, lsm_segdesc *d, lsm_extv *pages);
/* Frees what was written and b. */
void lsm__build_abort(lsm_builder *b);

/* segcur.c */
typedef struct lsm_src lsm_src;
struct lsm_src_ops {
  int (*first)(lsm_src *s);
  int (*last)(lsm_src *s);
  int (*next)(lsm_src *s);
  int (*prev)(lsm_src *s);
  int (*seek)(lsm_src *s, const uint8_t *k, size_t kl, int ge); /* ge: first >= k, else last <= k */
  /* 1 if a range delete of this source newer than seq covers k */
  int (*covers)(lsm_src *s, const uint8_t *k, size_t kl, uint64_t seq);
  int (*value)(lsm_src *s, uint64_t off, uint8_t *buf, size_t n); /* overflow reads */
  void (*close)(lsm_src *s);
};
struct lsm_src {
  const struct lsm_src_ops *ops;
  int valid;
  const uint8_t *key;
  size_t klen;
  int kind;
  const uint8_t *val; /* inline value, or the tail of an LSM_V_SPLIT value */
  uint64_t vlen;
  uint32_t ovf; /* overflow/split: first page of the value's run */
  uint64_t seq; /* memtable: commit sequence; segments: LSM_SEQ_OWN */
};
int lsm__segcur_open(lsm_db *db, lsm_seg *seg, lsm_src **out);
/* A segment cursor in the caller's memory (point seeks: no allocation). It
 * takes no reference on seg; kbuf holds db->klim + 1 bytes (the current
 * key). lsm__segcur_fini releases the pages it pins; do not call close. */
typedef struct lsm_segcur {
  lsm_src base;
  lsm_db *db;
  lsm_seg *seg;
  int nst; /* stack depth: st[0] root .. st[nst-1] leaf */
  struct {
    lsm_page *pg;
    lsm_pview v;
    uint32_t idx;
  } st[LSM_MAX_DEPTH + 1];
  uint8_t *kbuf;
} lsm_segcur;
void lsm__segcur_init(lsm_segcur *c, lsm_db *db, lsm_seg *seg, uint8_t *kbuf);
void lsm__segcur_fini(lsm_segcur *c);
int lsm__memcur_open(lsm_mem *m, uint64_t snap, lsm_src **out);
int lsm__ranges_cover(const lsm_range *r, size_t n, const uint8_t *k, size_t kl);
/* Sorts ranges by lo and merges overlapping or touching ones; returns the
 * new count. */
size_t lsm__ranges_coalesce(lsm_range *r, size_t k);

/* segments */
int lsm__seg_load(lsm_db *db, const lsm_segdesc *d, lsm_seg **out);
void lsm__seg_unref(lsm_db *db, lsm_seg *s);
int lsm__seg_pages(lsm_db *db, const lsm_segdesc *d, lsm_extv *out);

/* ---- merges (merge.c, merge_full.c) ------------------------------------ */
typedef struct lsm_keyspan {
  const uint8_t *lo, *hi; /* inclusive */
  uint32_t lol, hil;
} lsm_keyspan;

/* A partial merge of source S (the oldest Waiting segment, or Regular n) into
 * destination D (Regular n+1), design in docs/LSM.md "Merging". The window
 * is chosen in S; the entries of the newer sources (the Waiting segments of
 * the same batch) inside its key span are promoted with it, newest winning.
 * A range tombstone in any source makes the promotion whole. */
typedef struct lsm_merge_in {
  lsm_seg *src;             /* S (never NULL, has a tree or ranges) */
  lsm_seg *const *newer;    /* newer sources, newest first (any range tombstone: all promoted whole) */
  uint32_t nnewer;          /* at most LSM_MAX_BATCH - 1 */
  lsm_seg *dst;             /* D, or NULL when Regular n+1 is empty */
  const lsm_keyspan *older; /* key spans of every segment older than D that has a tree */
  size_t nolder;            /* 0: nothing older than D holds points */
  int older_ranges;         /* 1: some segment older than D has range tombstones or points */
  uint32_t window;          /* promote about this many leaves of S; 0 or >= S's leaves: all of S */
  const uint8_t *after;     /* compaction pointer: start the window after this key (NULL: start) */
  uint32_t afterlen;
} lsm_merge_in;

typedef struct lsm_merge_out {
  lsm_segdesc src_new;                  /* S' (root 0 and rt_page 0: nothing of S is left) */
  lsm_segdesc dst_new;                  /* D' */
  lsm_segdesc newer_new[LSM_MAX_BATCH]; /* each newer source without the window (root 0: nothing left) */
  lsm_extv freed;                       /* pages of S and D that neither S' nor D' reaches */
  lsm_extv written; /* pages written for S' and D' (freed by the caller if it cannot commit) */
  uint8_t *next;    /* new compaction pointer: the last key promoted (caller frees) */
  uint32_t nextlen;
  uint64_t promoted_leaves; /* leaves of S promoted */
  uint64_t written_pages;   /* pages written (leaves, parents, blobs) */
  uint64_t recycled;        /* subtrees of S and D kept by reference */
  uint64_t tombs_dropped;   /* point tombstones that disappeared */
} lsm_merge_out;

/* Runs the merge without any lock (the caller holds a version pinning S and
 * D). On success the new pages are written (not synced) and out->freed lists
 * what S' and D' no longer reach; on failure every page written is freed
 * again and out is empty. */
int lsm__merge_partial(lsm_db *db, const lsm_merge_in *in, lsm_merge_out *out);
void lsm__merge_out_free(lsm_merge_out *out);

/* Merges whole segments segs[0..n) (newest first) into one. drop: also drop
 * tombstones and range tombstones (nothing older exists). Overflow values move
 * by reference; *freed gets every page of the inputs the output does not
 * reach. out->root = out->rt_page = 0 when nothing is left. */
int lsm__merge_full(lsm_db *db, lsm_seg **segs, size_t n, int drop, lsm_segdesc *out, lsm_extv *freed,
                    lsm_extv *written);

/* cursor.c: a merged view over sources ordered newest first */
typedef struct lsm_mcur lsm_mcur;
int lsm__mcur_new(lsm_src **srcs, size_t n, int living, lsm_mcur **out);
void lsm__mcur_free(lsm_mcur *m);
int lsm__mcur_first(lsm_mcur *m);
int lsm__mcur_next(lsm_mcur *m);
int lsm__mcur_last(lsm_mcur *m);
int lsm__mcur_prev(lsm_mcur *m);
int lsm__mcur_seek(lsm_mcur *m, const uint8_t *k, size_t kl, int op);
lsm_src *lsm__mcur_cur(lsm_mcur *m); /* the winning source, or NULL */
int lsm__mcur_deleted(lsm_mcur *m);  /* current entry is deleted (raw mode) */

/* db.c: the library's own messages go to lsm_options.log_fn, never to
 * stderr. LSM_LOG_* levels. */
void lsm__log(lsm_db *db, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* db.c: failures. Any write, sync or truncate that fails makes the
 * database refuse further writes until it is reopened. */
/* Records rc as the database's failure (the first one wins); returns rc. */
int lsm__fail(lsm_db *db, int rc, const char *what);
/* 0, or QUIRE_EIO with a message naming the earlier failure. */
int lsm__failed(lsm_db *db);
/* The file layer's write and sync, refused after a failure and recording
 * their own. */
int lsm__fwrite(lsm_db *db, const void *buf, size_t n, uint64_t off);
int lsm__fsync(lsm_db *db);

/* point.c: the nearest live entry over sources ordered newest first (a
 * transaction's buffer and pending segments, a memtable, segments), with no
 * cursor allocated. op LSM_SEEK_LE or LSM_SEEK_GE. On success the key is
 * copied to keybuf (QUIRE_ETOOLARGE if keycap is short; *klen_out is set
 * either way) and *out holds the value as lsm_get's does. QUIRE_ENOTFOUND
 * when nothing qualifies. The caller keeps the sources alive (a pinned
 * version or transaction); b is working state. */
typedef struct lsm_bound {
  const uint8_t *k;
  size_t kl;
  int incl;
} lsm_bound;
typedef struct lsm_point_src {
  lsm_mem *m; /* a memtable or transaction buffer, read at snap; or NULL */
  uint64_t snap;
  lsm_seg *seg; /* when m is NULL */
  lsm_bound b;
} lsm_point_src;
int lsm__point_seek(lsm_db *db, lsm_point_src *s, size_t n, const void *key, size_t klen, int op,
                    void *keybuf, size_t keycap, size_t *klen_out, lsm_value *out);

/* ---- version.c --------------------------------------------------------- */
int lsm__version_new(lsm_db *db, lsm_version **out);
void lsm__version_unref(lsm_db *db, lsm_version *v);
/* Pins the current version and visible seq. */
lsm_version *lsm__pin(lsm_db *db, uint64_t *seq);
/* Opens sources for (extra..., version at snap), newest first. */
int lsm__sources(lsm_db *db, lsm_version *v, uint64_t snap, lsm_src **srcs, size_t *n);
/* Installs nv as current (takes ownership) and drops the old version. */
void lsm__version_swap(lsm_db *db, lsm_version *nv, uint64_t visible);
/* A new version: v's segments with front (newest first, new references
 * taken) ahead of Incoming, and memtable mem. QUIRE_EBUSY past the limits. */
int lsm__version_with(lsm_db *db, const lsm_version *v, lsm_seg **front, size_t nfront, lsm_mem *mem,
                      lsm_version **out);
void lsm__limbo_add(lsm_db *db, uint64_t vid, lsm_extv *pages);
void lsm__punch_free(lsm_db *db);

/* ---- header.c ---------------------------------------------------------- */
#define LSM_HDR_NEW_EPOCH 1u /* lsm__write_header flags */
#define LSM_HDR_MERGE 2u
int lsm__write_header(lsm_db *db, const lsm_version *v, const lsm_extv *extra, uint64_t seq, unsigned flags);
/* Picks the valid slot with the higher generation into db->hdr; *damaged =
 * 1 when the other slot does not validate. */
int lsm__hdr_read(lsm_db *db, int *damaged);
/* Writes a new file's header (both slots), sized per o. */
int lsm__file_create(lsm_db *db, const lsm_options *o);
/* 1 if the file looks like a creation cut short (a slot never written). */
int lsm__file_unfinished(lsm_db *db);
/* db->free from the header's saved list, or from a reachability walk. */
int lsm__free_list_load(lsm_db *db);
int lsm__free_list_rebuild(lsm_db *db);

/* ---- log.c ------------------------------------------------------------- */
#define LSM_WAL_HDR 24u /* record header: checksum, length, 0, sequence */
/* Chain seed of the first record of the header's epoch. */
uint64_t lsm__wal_seed(lsm_db *db);
/* Appends a record (LSM_WAL_HDR bytes of room, then the payload). */
int lsm__log_write(lsm_db *db, uint8_t *rec, size_t len, uint64_t seq);
/* Serialises a transaction buffer's net effect as a record payload. */
int lsm__log_payload(lsm_mem *m, quire_buf *out);
/* Validates a payload (m NULL: also the arena bytes it needs in *need) or
 * applies it to m under seq. */
int lsm__payload_apply(lsm_db *db, const uint8_t *p, size_t len, lsm_mem *m, uint64_t seq, size_t *need);
/* Replays the log of the header's epoch into m. */
int lsm__log_replay(lsm_db *db, lsm_mem *m);
/* 1 if the log starts with a valid record of the epoch after the header's. */
int lsm__log_has_next_epoch(lsm_db *db);
/* Zeroes the records written but never acknowledged (once, after a
 * failure). commit_lock. */
void lsm__log_erase(lsm_db *db);
/* Everything up to seq is durable through a header; a new epoch begins.
 * commit_lock. */
void lsm__log_restart(lsm_db *db, uint64_t seq);
/* Readers may see commits up to seq. */
void lsm__publish(lsm_db *db, uint64_t seq);
/* Group commit: waits for commit `wait` to be durable, then acknowledges seq
 * (its record ends at end_off of log generation gen). No lock held. */
int lsm__group_sync(lsm_db *db, uint64_t wait, uint64_t seq, uint64_t end_off, uint64_t gen);

/* ---- txn.c, commit.c --------------------------------------------------- */
#define LSM_MAX_PENDING 8               /* pending segments of a transaction before they are folded */
#define LSM_CONFLICT_BUCKETS (1u << 16) /* last-writer sequences by key hash (optimistic commits) */

static inline uint64_t lsm__key_hash(const void *k, size_t kl) { return quire__xxh3(k, kl); }

struct lsm_txn {
  lsm_db *db;
  unsigned flags;
  lsm_version *ver; /* the snapshot, pinned */
  uint64_t snap;
  lsm_mem *buf; /* own writes, sequence = operation number */
  uint64_t op;
  lsm_seg *pend[LSM_MAX_PENDING + 1]; /* spilled writes, oldest first */
  size_t npend;
  uint64_t pend_pages;
  uint64_t *reads; /* key hashes read (optimistic) */
  size_t nreads, capreads;
  int failed;    /* a spill failed: commit returns it */
  int sync_mode; /* this commit's durability (lsm_txn_set_sync) */
};

/* Writes the net effect of m as a segment (root 0 and rt_page 0 when empty);
 * pages written are appended to pages (may be NULL). */
int lsm__build_from_mem(lsm_db *db, lsm_mem *m, lsm_segdesc *d, lsm_extv *pages);
int lsm__flush_locked(lsm_db *db);

/* ---- point.c ----------------------------------------------------------- */
/* Newest version of k in one segment / memtable at snap / version at snap:
 * 1 found (out filled unless a tombstone; *kind set), 0 not, < 0 error. */
int lsm__seg_get(lsm_db *db, lsm_seg *s, const uint8_t *k, size_t kl, lsm_value *out, int *kind);
int lsm__mem_get(lsm_mem *m, uint64_t snap, const uint8_t *k, size_t kl, lsm_value *out, int *kind);
/* lsm_get's answer in version v at snap: 0 or QUIRE_ENOTFOUND. */
int lsm__version_get(lsm_db *db, lsm_version *v, uint64_t snap, const uint8_t *k, size_t kl, lsm_value *out);
/* Appends version v's sources at snap to s (lsm__point_seek). */
size_t lsm__point_sources(lsm_version *v, uint64_t snap, lsm_point_src *s, size_t n);
/* The EQ case of the seeks: lsm_get's result rc with the key copied out. */
int lsm__seek_eq(int rc, const void *key, size_t klen, void *keybuf, size_t keycap, size_t *klen_out,
                 lsm_value *out);
int lsm__seek_args(const void *key, size_t klen, int op, const void *keybuf, size_t keycap,
                   const size_t *klen_out, const lsm_value *out);

/* cursor.c */
int lsm__cursor_make(lsm_db *db, lsm_version *ver, lsm_src **srcs, size_t n, lsm_cursor **out);

/* levels.c: merge scheduling, background threads, backpressure, compact */
int lsm__merge_start(lsm_db *db, const lsm_options *o);
void lsm__merge_stop(lsm_db *db);
void lsm__merge_kick(lsm_db *db);         /* commit_lock may be held */
void lsm__merge_throttle(lsm_db *db);     /* before taking commit_lock */
void lsm__merge_after_commit(lsm_db *db); /* inline mode: run due merges (no lock held) */
/* on: no new merge starts and the running ones have finished; off: undo. Nests. */
void lsm__merge_pause(lsm_db *db, int on);
uint64_t lsm__level_nominal(const lsm_db *db, uint32_t n);

/* check.c */
typedef void (*lsm_report_fn)(void *ctx, const char *msg);
typedef struct lsm_check_counts {
  uint64_t total;      /* pages in the file (page 1 .. npages-1) */
  uint64_t header;     /* page 1 */
  uint64_t log;        /* the commit log region */
  uint64_t reachable;  /* named by a segment of the header */
  uint64_t free;       /* free, freed by the next header, in limbo, or the saved list itself */
  uint64_t limbo;      /* of free: in limbo (freed by merges, older snapshots may read them) */
  uint64_t leaked;     /* none of these */
  uint64_t double_use; /* free twice, or both free and in use (corruption) */
} lsm_check_counts;
int lsm__check(lsm_db *db, lsm_report_fn report, void *ctx, lsm_check_counts *cnt);
/* Bitmap of pages reachable from h's segments (plus page 1, the log). */
int lsm__reachable(lsm_db *db, const lsm_hdr *h, uint8_t **bits, int strict, lsm_report_fn report, void *ctx);

#endif
