/*
 * lsm/file.c — the file under the LSM engine: POSIX file layer, page cache,
 * page checksums, the two header slots, free space and blobs.
 *
 * File layout (page size P, pages numbered from 1; page N at (N-1)*P):
 *
 *   page 1            header: slot 0 at byte 0, slot 1 at byte 1024 (1024
 *                     bytes each); the rest of page 1 is unused
 *   wal_start ..      the commit log region (wal_pages pages, raw bytes)
 *   other pages       segment pages (leaf, parent, overflow), blobs (range
 *                     tombstones, the saved free list), free pages
 *
 * Every page except page 1 and the log region ends with a trailer: `reserve`
 * bytes kept zero for later use, then u64 LE XXH3-64 of bytes [0, P-8)
 * seeded with the page number (a page copied to the wrong place fails).
 * usable = P - reserve - 8.
 *
 * Header slot (1024 bytes, integers little-endian):
 *
 *   off  size  field
 *   0    8     magic "QUIRELSM"
 *   8    4     format version (1)
 *   12   4     page size
 *   16   4     reserve bytes
 *   20   4     flags: 1 = checksums not verified, 2 = free list exact
 *   24   4     npages (file end, in pages)
 *   28   4     block pages
 *   32   8     generation (slot = generation & 1)
 *   40   8     change counter (sequence number of the newest commit in segments)
 *   48   8     merge counter
 *   56   8     file id (random, fixed at creation)
 *   64   4     log start page
 *   68   4     log pages
 *   72   8     log epoch (records of other epochs are ignored)
 *   80   4     free list blob first page (0 = empty)
 *   84   4     free list blob length in bytes
 *   88   4     free pages (summary)
 *   92   4     level lists length L (bytes)
 *   96   L     level lists: varint n_incoming, varint n_waiting, varint n_regular,
 *              then per segment varint root, varint range-blob page, varint
 *              range-blob length (root 0 = empty Regular level)
 *   1016 8     XXH3-64 of bytes [0, 1016)
 *
 * Free list blob: u32 count, then count x (u32 first page, u32 pages), sorted.
 * Blobs occupy ceil(len / usable) contiguous pages, each with a trailer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsm/lsm_int.h"

/* ---- POSIX file layer -------------------------------------------------- */
typedef struct posix_file {
  lsm_file base;
  int fd;
} posix_file;

static int px_read(lsm_file *f, void *buf, size_t n, uint64_t off) {
  int fd = ((posix_file *)f)->fd;
  uint8_t *p = buf;
  while (n) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return quire__errno("lsm read at %llu", (unsigned long long)off);
    }
    if (r == 0) return quire__err(QUIRE_ECORRUPT, "lsm: file ends at %llu", (unsigned long long)off);
    p += r, n -= (size_t)r, off += (uint64_t)r;
  }
  return 0;
}

static int px_write(lsm_file *f, const void *buf, size_t n, uint64_t off) {
  int fd = ((posix_file *)f)->fd;
  const uint8_t *p = buf;
  while (n) {
    ssize_t r = pwrite(fd, p, n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return quire__errno("lsm write at %llu", (unsigned long long)off);
    }
    p += r, n -= (size_t)r, off += (uint64_t)r;
  }
  return 0;
}

static int px_sync(lsm_file *f) {
  if (fdatasync(((posix_file *)f)->fd) != 0) return quire__errno("lsm fdatasync");
  return 0;
}

static int px_size(lsm_file *f, uint64_t *out) {
  struct stat st;
  if (fstat(((posix_file *)f)->fd, &st) != 0) return quire__errno("lsm fstat");
  *out = (uint64_t)st.st_size;
  return 0;
}

static int px_truncate(lsm_file *f, uint64_t size) {
  if (ftruncate(((posix_file *)f)->fd, (off_t)size) != 0) return quire__errno("lsm ftruncate");
  return 0;
}

static int px_lock(lsm_file *f) {
  if (flock(((posix_file *)f)->fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return quire__err(QUIRE_EBUSY, "lsm: file is open elsewhere");
    return quire__errno("lsm flock");
  }
  return 0;
}

static int px_punch(lsm_file *f, uint64_t off, uint64_t n) {
  if (fallocate(((posix_file *)f)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)n) != 0)
    return quire__errno("lsm fallocate(punch)");
  return 0;
}

static void px_close(lsm_file *f) {
  if (!f) return;
  close(((posix_file *)f)->fd);
  quire__free(f);
}

static const struct lsm_file_ops px_ops = {px_read,     px_write, px_sync,  px_size,
                                           px_truncate, px_lock,  px_close, px_punch};

static int px_open(const struct lsm_vfs *vfs, const char *path, int create, lsm_file **out) {
  (void)vfs;
  posix_file *f = quire__calloc(1, sizeof *f);
  if (!f) return QUIRE_ENOMEM;
  f->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
  if (f->fd < 0) {
    int rc = quire__errno("lsm open %s", path);
    quire__free(f);
    return rc;
  }
  f->base.ops = &px_ops;
  *out = &f->base;
  return 0;
}

static const struct lsm_vfs px_vfs = {px_open, NULL};
const struct lsm_vfs *lsm_vfs_posix(void) { return &px_vfs; }

/* ---- extent lists ------------------------------------------------------ */
int lsm__extv_push(lsm_extv *x, uint32_t start, uint32_t count) {
  if (x->n == x->cap) {
    size_t cap = x->cap ? x->cap * 2 : 8;
    lsm_ext *v = quire__realloc(x->v, cap * sizeof *v);
    if (!v) return QUIRE_ENOMEM;
    x->v = v, x->cap = cap;
  }
  x->v[x->n++] = (lsm_ext){start, count};
  return 0;
}

void lsm__extv_free(lsm_extv *x) {
  quire__free(x->v);
  memset(x, 0, sizeof *x);
}

uint64_t lsm__extv_pages(const lsm_extv *x) {
  uint64_t n = 0;
  for (size_t i = 0; i < x->n; i++) n += x->v[i].count;
  return n;
}

int lsm__extv_insert(lsm_extv *x, uint32_t start, uint32_t count) {
  if (!count) return 0;
  size_t lo = 0, hi = x->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (x->v[mid].start < start)
      lo = mid + 1;
    else
      hi = mid;
  }
  /* lo = first extent starting at or after start */
  int join_prev = lo > 0 && x->v[lo - 1].start + x->v[lo - 1].count == start;
  int join_next = lo < x->n && start + count == x->v[lo].start;
  if (join_prev && join_next) {
    x->v[lo - 1].count += count + x->v[lo].count;
    memmove(&x->v[lo], &x->v[lo + 1], (x->n - lo - 1) * sizeof *x->v);
    x->n--;
    return 0;
  }
  if (join_prev) {
    x->v[lo - 1].count += count;
    return 0;
  }
  if (join_next) {
    x->v[lo].start = start, x->v[lo].count += count;
    return 0;
  }
  int rc = lsm__extv_push(x, 0, 0);
  if (rc) return rc;
  memmove(&x->v[lo + 1], &x->v[lo], (x->n - 1 - lo) * sizeof *x->v);
  x->v[lo] = (lsm_ext){start, count};
  return 0;
}

static int ext_cmp(const void *a, const void *b) {
  const lsm_ext *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

void lsm__extv_sort(lsm_extv *x) {
  if (x->n < 2) return;
  qsort(x->v, x->n, sizeof *x->v, ext_cmp);
  size_t o = 0;
  for (size_t i = 0; i < x->n; i++) {
    if (o && x->v[o - 1].start + x->v[o - 1].count == x->v[i].start)
      x->v[o - 1].count += x->v[i].count;
    else
      x->v[o++] = x->v[i];
  }
  x->n = o;
}

int lsm__extv_subtract(const lsm_extv *a, const lsm_extv *b, lsm_extv *out) {
  size_t j = 0;
  for (size_t i = 0; i < a->n; i++) {
    uint64_t s = a->v[i].start, e = s + a->v[i].count;
    while (j < b->n && (uint64_t)b->v[j].start + b->v[j].count <= s) j++;
    for (size_t k = j; k < b->n && b->v[k].start < e; k++) {
      uint64_t bs = b->v[k].start, be = bs + b->v[k].count;
      if (bs > s) {
        int rc = lsm__extv_push(out, (uint32_t)s, (uint32_t)(bs - s));
        if (rc) return rc;
      }
      if (be > s) s = be;
      if (s >= e) break;
    }
    if (s < e) {
      int rc = lsm__extv_push(out, (uint32_t)s, (uint32_t)(e - s));
      if (rc) return rc;
    }
  }
  return 0;
}

/* ---- page cache -------------------------------------------------------- */
int lsm__cache_init(lsm_cache *c, size_t budget, uint32_t pgsz) {
  memset(c, 0, sizeof *c);
  size_t want = budget / pgsz;
  size_t nb = 256;
  while (nb < want && nb < (1u << 22)) nb *= 2;
  c->buckets = quire__calloc(nb, sizeof *c->buckets);
  if (!c->buckets) return QUIRE_ENOMEM;
  c->nbuckets = nb;
  c->budget = budget;
  c->lru.next = c->lru.prev = &c->lru;
  pthread_mutex_init(&c->mu, NULL);
  return 0;
}

static void lru_unlink(lsm_page *p) {
  p->prev->next = p->next;
  p->next->prev = p->prev;
  p->prev = p->next = NULL;
  p->in_lru = 0;
}

static void lru_push_front(lsm_cache *c, lsm_page *p) {
  p->next = c->lru.next;
  p->prev = &c->lru;
  c->lru.next->prev = p;
  c->lru.next = p;
  p->in_lru = 1;
}

static void hash_unlink(lsm_cache *c, lsm_page *p) {
  lsm_page **pp = &c->buckets[p->pgno & (c->nbuckets - 1)];
  while (*pp && *pp != p) pp = &(*pp)->hnext;
  if (*pp) *pp = p->hnext;
  p->hashed = 0;
}

void lsm__cache_destroy(lsm_cache *c) {
  if (!c->buckets) return;
  for (size_t i = 0; i < c->nbuckets; i++) {
    lsm_page *p = c->buckets[i];
    while (p) {
      lsm_page *n = p->hnext;
      quire__free(p);
      p = n;
    }
  }
  quire__free(c->buckets);
  c->buckets = NULL;
  pthread_mutex_destroy(&c->mu);
}

/* Under c->mu: drop unreferenced pages until within budget. A hit only sets
 * `hot` (no list surgery on the read path); eviction gives hot pages a
 * second chance and takes pinned ones off the list until they are released. */
static void cache_evict(lsm_cache *c, uint32_t pgsz) {
  while (c->bytes > c->budget && c->lru.prev != &c->lru) {
    lsm_page *p = c->lru.prev;
    lru_unlink(p);
    if (p->refs > 0) continue; /* back on the list at its last release */
    if (p->hot) {
      p->hot = 0;
      lru_push_front(c, p);
      continue;
    }
    hash_unlink(c, p);
    c->bytes -= pgsz;
    quire__free(p);
  }
}

void lsm__page_seal(lsm_db *db, uint8_t *page, uint32_t pgno) {
  memset(page + db->usable, 0, db->reserve);
  st_le64(page + db->pgsz - 8, quire__xxh3_seeded(page, db->pgsz - 8, pgno));
}

int lsm__page_verify(lsm_db *db, const uint8_t *page, uint32_t pgno) {
  if (!db->checksums) return 0;
  if (ld_le64(page + db->pgsz - 8) != quire__xxh3_seeded(page, db->pgsz - 8, pgno))
    return quire__err(QUIRE_ECORRUPT, "lsm: page %u fails its checksum", pgno);
  return 0;
}

static int pgno_ok(lsm_db *db, uint32_t pgno, uint32_t count) {
  uint64_t end = (uint64_t)pgno + count;
  if (pgno < 2 || end > atomic_load(&db->npages)) return 0;
  if (pgno < db->wal_start + db->wal_pages && end > db->wal_start) return 0;
  return 1;
}

int lsm__read_pages(lsm_db *db, uint32_t pgno, uint32_t count, uint8_t *buf) {
  if (!pgno_ok(db, pgno, count))
    return quire__err(QUIRE_ECORRUPT, "lsm: page %u (+%u) out of range", pgno, count);
  int rc = db->file->ops->read(db->file, buf, (size_t)count * db->pgsz, (uint64_t)(pgno - 1) * db->pgsz);
  if (rc) return rc;
  for (uint32_t i = 0; i < count; i++) {
    rc = lsm__page_verify(db, buf + (size_t)i * db->pgsz, pgno + i);
    if (rc) return rc;
  }
  return 0;
}

int lsm__write_pages(lsm_db *db, uint32_t pgno, uint32_t count, uint8_t *buf) {
  for (uint32_t i = 0; i < count; i++) lsm__page_seal(db, buf + (size_t)i * db->pgsz, pgno + i);
  atomic_fetch_add(&db->st_bytes, (uint64_t)count * db->pgsz);
  return lsm__fwrite(db, buf, (size_t)count * db->pgsz, (uint64_t)(pgno - 1) * db->pgsz);
}

int lsm__page_get(lsm_db *db, uint32_t pgno, lsm_page **out) {
  lsm_cache *c = &db->cache;
  pthread_mutex_lock(&c->mu);
  for (lsm_page *p = c->buckets[pgno & (c->nbuckets - 1)]; p; p = p->hnext) {
    if (p->pgno == pgno) {
      p->refs++;
      p->hot = 1;
      c->hits++;
      pthread_mutex_unlock(&c->mu);
      *out = p;
      return 0;
    }
  }
  c->misses++;
  pthread_mutex_unlock(&c->mu);
  lsm_page *np = quire__malloc(sizeof *np + db->pgsz + 16);
  if (!np) return QUIRE_ENOMEM;
  memset(np, 0, sizeof *np);
  np->data = (uint8_t *)(((uintptr_t)(np + 1) + 15) & ~(uintptr_t)15);
  np->pgno = pgno;
  int rc = lsm__read_pages(db, pgno, 1, np->data);
  if (rc) {
    quire__free(np);
    return rc;
  }
  pthread_mutex_lock(&c->mu);
  for (lsm_page *p = c->buckets[pgno & (c->nbuckets - 1)]; p; p = p->hnext) {
    if (p->pgno == pgno) { /* raced with another reader */
      p->refs++;
      p->hot = 1;
      pthread_mutex_unlock(&c->mu);
      quire__free(np);
      *out = p;
      return 0;
    }
  }
  np->refs = 1;
  np->hashed = 1;
  lsm_page **b = &c->buckets[pgno & (c->nbuckets - 1)];
  np->hnext = *b;
  *b = np;
  c->bytes += db->pgsz;
  cache_evict(c, db->pgsz);
  pthread_mutex_unlock(&c->mu);
  *out = np;
  return 0;
}

void lsm__page_put(lsm_db *db, lsm_page *p) {
  if (!p) return;
  lsm_cache *c = &db->cache;
  pthread_mutex_lock(&c->mu);
  if (--p->refs == 0) {
    if (!p->hashed) {
      quire__free(p); /* forgotten while pinned: its page number was reused */
    } else if (!p->in_lru) {
      lru_push_front(c, p);
      cache_evict(c, db->pgsz);
    }
  }
  pthread_mutex_unlock(&c->mu);
}

void lsm__page_ref(lsm_db *db, lsm_page *p) {
  pthread_mutex_lock(&db->cache.mu);
  p->refs++;
  pthread_mutex_unlock(&db->cache.mu);
}

/* Drops cached copies of pages about to be rewritten. A pinned copy stays
 * alive for its holder but leaves the hash. */
void lsm__cache_forget(lsm_db *db, uint32_t start, uint32_t count) {
  lsm_cache *c = &db->cache;
  pthread_mutex_lock(&c->mu);
  if (c->bytes == 0) {
    pthread_mutex_unlock(&c->mu);
    return;
  }
  for (uint64_t pg = start; pg < (uint64_t)start + count; pg++) {
    for (lsm_page *p = c->buckets[pg & (c->nbuckets - 1)]; p; p = p->hnext) {
      if (p->pgno != pg) continue;
      hash_unlink(c, p);
      c->bytes -= db->pgsz;
      if (p->in_lru) lru_unlink(p);
      if (p->refs == 0) quire__free(p);
      break;
    }
  }
  pthread_mutex_unlock(&c->mu);
}

/* ---- header slots ------------------------------------------------------ */
int lsm__hdr_encode(const lsm_hdr *h, uint8_t *s) {
  memset(s, 0, LSM_SLOT_SIZE);
  memcpy(s, LSM_MAGIC, 8);
  st_le32(s + 8, h->version);
  st_le32(s + 12, h->pgsz);
  st_le32(s + 16, h->reserve);
  st_le32(s + 20, h->flags);
  st_le32(s + 24, h->npages);
  st_le32(s + 28, h->block_pages);
  st_le64(s + 32, h->generation);
  st_le64(s + 40, h->change_counter);
  st_le64(s + 48, h->merge_counter);
  st_le64(s + 56, h->file_id);
  st_le32(s + 64, h->wal_start);
  st_le32(s + 68, h->wal_pages);
  st_le64(s + 72, h->wal_epoch);
  st_le32(s + 80, h->fl_page);
  st_le32(s + 84, h->fl_len);
  st_le32(s + 88, h->fl_free);
  size_t nseg = (size_t)h->n_in + h->n_wait + h->n_reg;
  if (nseg > LSM_MAX_SEGS) return quire__err(QUIRE_ETOOLARGE, "lsm: too many segments");
  uint8_t *p = s + 96, *end = s + LSM_SLOT_SIZE - 8;
  p += quire__varint_put(p, h->n_in);
  p += quire__varint_put(p, h->n_wait);
  p += quire__varint_put(p, h->n_reg);
  for (size_t i = 0; i < nseg; i++) {
    if (end - p < 3 * QUIRE_VARINT_MAX)
      return quire__err(QUIRE_ETOOLARGE, "lsm: level lists overflow the header");
    p += quire__varint_put(p, h->seg[i].root);
    p += quire__varint_put(p, h->seg[i].rt_page);
    p += quire__varint_put(p, h->seg[i].rt_len);
  }
  st_le32(s + 92, (uint32_t)(p - (s + 96)));
  st_le64(s + LSM_SLOT_SIZE - 8, quire__xxh3(s, LSM_SLOT_SIZE - 8));
  return 0;
}

static int get_u32v(const uint8_t **p, const uint8_t *end, uint32_t *out) {
  uint64_t v;
  int n = quire__varint_get(*p, (size_t)(end - *p), &v);
  if (n < 0 || v > UINT32_MAX) return QUIRE_ECORRUPT;
  *p += n;
  *out = (uint32_t)v;
  return 0;
}

/* QUIRE_ECORRUPT for a slot that is not a valid header (torn, zero, foreign),
 * QUIRE_EVERSION for a valid slot of another format version. */
int lsm__hdr_decode(const uint8_t *s, lsm_hdr *h) {
  memset(h, 0, sizeof *h);
  if (memcmp(s, LSM_MAGIC, 8) != 0) return quire__err(QUIRE_ECORRUPT, "lsm: no header magic");
  if (ld_le64(s + LSM_SLOT_SIZE - 8) != quire__xxh3(s, LSM_SLOT_SIZE - 8))
    return quire__err(QUIRE_ECORRUPT, "lsm: header slot checksum mismatch");
  h->version = ld_le32(s + 8);
  if (h->version != LSM_FORMAT_VERSION)
    return quire__err(QUIRE_EVERSION, "lsm: file format version %u, this build reads version %u", h->version,
                      LSM_FORMAT_VERSION);
  h->pgsz = ld_le32(s + 12);
  h->reserve = ld_le32(s + 16);
  h->flags = ld_le32(s + 20);
  h->npages = ld_le32(s + 24);
  h->block_pages = ld_le32(s + 28);
  h->generation = ld_le64(s + 32);
  h->change_counter = ld_le64(s + 40);
  h->merge_counter = ld_le64(s + 48);
  h->file_id = ld_le64(s + 56);
  h->wal_start = ld_le32(s + 64);
  h->wal_pages = ld_le32(s + 68);
  h->wal_epoch = ld_le64(s + 72);
  h->fl_page = ld_le32(s + 80);
  h->fl_len = ld_le32(s + 84);
  h->fl_free = ld_le32(s + 88);
  uint32_t L = ld_le32(s + 92);
  if (h->pgsz < 4096 || h->pgsz > 65536 || (h->pgsz & (h->pgsz - 1)) || h->reserve > 1024 || h->npages < 2 ||
      h->wal_start < 2 || h->wal_pages < 1 || (uint64_t)h->wal_start + h->wal_pages > h->npages ||
      L > LSM_SLOT_SIZE - 8 - 96)
    return quire__err(QUIRE_ECORRUPT, "lsm: header fields out of range");
  const uint8_t *p = s + 96, *end = s + 96 + L;
  if (get_u32v(&p, end, &h->n_in) || get_u32v(&p, end, &h->n_wait) || get_u32v(&p, end, &h->n_reg) ||
      (uint64_t)h->n_in + h->n_wait + h->n_reg > LSM_MAX_SEGS || h->n_reg > LSM_MAX_REGULAR)
    return quire__err(QUIRE_ECORRUPT, "lsm: bad level lists");
  size_t nseg = (size_t)h->n_in + h->n_wait + h->n_reg;
  for (size_t i = 0; i < nseg; i++) {
    if (get_u32v(&p, end, &h->seg[i].root) || get_u32v(&p, end, &h->seg[i].rt_page) ||
        get_u32v(&p, end, &h->seg[i].rt_len))
      return quire__err(QUIRE_ECORRUPT, "lsm: bad level lists");
    if (h->seg[i].root >= h->npages || h->seg[i].rt_page >= h->npages)
      return quire__err(QUIRE_ECORRUPT, "lsm: segment root past the file end");
  }
  if (p != end) return quire__err(QUIRE_ECORRUPT, "lsm: trailing bytes in level lists");
  return 0;
}

/* ---- free space -------------------------------------------------------- */
int lsm__alloc(lsm_db *db, uint32_t min, uint32_t want, lsm_ext *out) {
  if (want < min) want = min;
  pthread_mutex_lock(&db->lock);
  /* First fit by address: the lowest run that holds `want` pages, so live
   * data drifts to the front of the file and free space gathers at its end,
   * where the next header cuts it off. Failing that, the largest run of at
   * least `min` pages, then the end of the file. While lsm_compact packs
   * the file (alloc_mode), the lowest run of at least `min`, or the end. */
  size_t best = SIZE_MAX;
  int mode = db->alloc_mode;
  for (size_t i = 0; i < db->free.n && mode != LSM_ALLOC_END; i++) {
    uint32_t c = db->free.v[i].count;
    if (c >= want || (mode == LSM_ALLOC_LOWEST && c >= min)) {
      best = i;
      break;
    }
    if (c >= min && (best == SIZE_MAX || c > db->free.v[best].count)) best = i;
  }
  if (best != SIZE_MAX) {
    lsm_ext *e = &db->free.v[best];
    uint32_t take = e->count < want ? e->count : want;
    out->start = e->start;
    out->count = take;
    e->start += take;
    e->count -= take;
    if (e->count == 0) {
      memmove(e, e + 1, (db->free.n - best - 1) * sizeof *e);
      db->free.n--;
    }
  } else {
    uint32_t np = atomic_load(&db->npages);
    if ((uint64_t)np + want > UINT32_MAX - 1) {
      pthread_mutex_unlock(&db->lock);
      return quire__err(QUIRE_ETOOLARGE, "lsm: file is full (2^32 pages)");
    }
    out->start = np;
    out->count = want;
    atomic_store(&db->npages, np + want);
  }
  pthread_mutex_unlock(&db->lock);
  lsm__cache_forget(db, out->start, out->count);
  return 0;
}

void lsm__free_now(lsm_db *db, uint32_t start, uint32_t count) {
  pthread_mutex_lock(&db->lock);
  if (lsm__extv_insert(&db->free, start, count))
    lsm__log(db, LSM_LOG_WARN, "lsm: out of memory freeing %u pages (leaked until the next check)", count);
  pthread_mutex_unlock(&db->lock);
}

/* ---- blobs ------------------------------------------------------------- */
uint32_t lsm__blob_pages(const lsm_db *db, uint64_t len) {
  return (uint32_t)((len + db->usable - 1) / db->usable);
}

int lsm__blob_write(lsm_db *db, const uint8_t *p, size_t len, lsm_extv *used, uint32_t *first) {
  *first = 0;
  if (!len) return 0;
  uint64_t np = lsm__blob_pages(db, len);
  if (np > UINT32_MAX / 2) return quire__err(QUIRE_ETOOLARGE, "lsm: blob too large");
  lsm_ext e;
  int rc = lsm__alloc(db, (uint32_t)np, (uint32_t)np, &e);
  if (rc) return rc;
  if (used && (rc = lsm__extv_push(used, e.start, e.count))) {
    lsm__free_now(db, e.start, e.count);
    return rc;
  }
  uint32_t chunk = 32;
  uint8_t *buf = quire__malloc((size_t)chunk * db->pgsz);
  if (!buf) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  size_t off = 0;
  for (uint32_t pg = 0; pg < np; pg += chunk) {
    uint32_t n = (uint32_t)(np - pg) < chunk ? (uint32_t)(np - pg) : chunk;
    memset(buf, 0, (size_t)n * db->pgsz);
    for (uint32_t i = 0; i < n; i++) {
      size_t take = len - off < db->usable ? len - off : db->usable;
      memcpy(buf + (size_t)i * db->pgsz, p + off, take);
      off += take;
    }
    rc = lsm__write_pages(db, e.start + pg, n, buf);
    if (rc) goto out;
  }
  *first = e.start;
out:
  quire__free(buf);
  if (rc && !used) lsm__free_now(db, e.start, e.count);
  return rc;
}

static int blob_read_room(lsm_db *db, uint32_t first, uint64_t off, uint8_t *buf, size_t n, size_t room);

int lsm__value_read(lsm_db *db, int kind, uint32_t ovf, const uint8_t *tail, uint64_t vlen, uint64_t off,
                    uint8_t *buf, size_t n) {
  uint64_t run = lsm__run_bytes(db, kind, vlen);
  if (off > vlen || n > vlen - off) return quire__err(QUIRE_EINVAL, "lsm: value read past its end");
  if (off < run) {
    size_t a = run - off < n ? (size_t)(run - off) : n;
    int rc = blob_read_room(db, ovf, off, buf, a, n); /* the tail below overwrites [a, n) */
    if (rc) return rc;
    buf += a, off += a, n -= a;
  }
  if (n) memcpy(buf, tail + (off - run), n);
  return 0;
}

int lsm__check_run(lsm_db *db, uint32_t first, uint64_t len) {
  uint64_t np = lsm__blob_pages(db, len);
  if (!len || np > UINT32_MAX || !pgno_ok(db, first, (uint32_t)np))
    return quire__err(QUIRE_ECORRUPT, "lsm: run at page %u of %llu bytes is out of range", first,
                      (unsigned long long)len);
  return 0;
}

/* Reads n bytes at off of the blob starting at first, page by page, verifying
 * each page it touches (never the whole blob). buf has room for `room` >= n
 * bytes, and bytes [n, room) may be overwritten (the caller writes them
 * afterwards): a page whose usable bytes start a stretch of buf with room
 * for the whole page, trailer included, is read straight into buf and
 * verified there; the next page (or the caller) overwrites its trailer. So a
 * 4 KiB value split into one page and an inline tail costs one read into the
 * caller's buffer and no copy of ours; only a last page without that room
 * goes through a bounce page. */
static int blob_read_room(lsm_db *db, uint32_t first, uint64_t off, uint8_t *buf, size_t n, size_t room) {
  if (!n) return 0;
  int rc = 0;
  uint64_t pg = off / db->usable;
  uint32_t in = (uint32_t)(off % db->usable);
  if (pg + lsm__blob_pages(db, in + n) > UINT32_MAX ||
      !pgno_ok(db, first, (uint32_t)(pg + lsm__blob_pages(db, in + n))))
    return quire__err(QUIRE_ECORRUPT, "lsm: value run at page %u out of range", first);
  uint8_t *page = NULL;
  while (n) {
    size_t take = db->usable - in < n ? db->usable - in : n;
    if (in == 0 && room >= db->pgsz) {
      rc = lsm__read_pages(db, first + (uint32_t)pg, 1, buf);
    } else {
      if (!page && !(page = quire__malloc(db->pgsz))) return QUIRE_ENOMEM;
      rc = lsm__read_pages(db, first + (uint32_t)pg, 1, page);
      if (!rc) memcpy(buf, page + in, take);
    }
    if (rc) break;
    buf += take, n -= take, room -= take, in = 0, pg++;
  }
  quire__free(page);
  return rc;
}

int lsm__blob_read(lsm_db *db, uint32_t first, uint64_t off, uint8_t *buf, size_t n) {
  return blob_read_room(db, first, off, buf, n, n);
}
