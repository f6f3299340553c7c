/*
 * lsm/mem.c — the memtable: a skiplist ordered by (key ascending, sequence
 * descending), so every version of a key sits together, newest first, and a
 * reader at snapshot S takes the first version with seq <= S. One writer at
 * a time (the commit lock); readers run without locks (nodes are published
 * with release stores and never change or move). Range deletes are a
 * prepend-only list of (lo, hi, seq). Memory comes from an arena freed with
 * the table. The same structure buffers a transaction's own writes, with a
 * per-operation sequence.
 */
#include <string.h>

#include "lsm/lsm_int.h"

#define CHUNK (64 * 1024)

static size_t node_size(int h) { return sizeof(lsm_mnode) + (size_t)h * sizeof(_Atomic(lsm_mnode *)); }

static int chunk_add(lsm_mem *m, size_t need) {
  /* chunks grow 1 KiB, 2 KiB, ... 64 KiB: a one-put transaction buffer costs
   * a small allocation, a memtable soon gets big chunks */
  size_t grow = m->nchunks < 6 ? (size_t)1024 << m->nchunks : CHUNK;
  size_t cap = need > grow ? need : grow;
  m->nchunks++;
  lsm_chunk *c = quire__malloc(sizeof *c + cap);
  if (!c) return QUIRE_ENOMEM;
  c->used = 0;
  c->cap = cap;
  c->next = m->chunks;
  m->chunks = c;
  m->bytes += cap;
  return 0;
}

static void *arena(lsm_mem *m, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!m->chunks || m->chunks->cap - m->chunks->used < n) {
    if (chunk_add(m, n)) return NULL;
  }
  void *p = m->chunks->data + m->chunks->used;
  m->chunks->used += n;
  return p;
}

size_t lsm__mem_need(size_t klen, size_t vlen) {
  return node_size(LSM_MEM_MAXH) + klen + vlen + 3 * 16 + sizeof(lsm_mrange);
}

int lsm__mem_reserve(lsm_mem *m, size_t need) {
  if (m->chunks && m->chunks->cap - m->chunks->used >= need) return 0;
  return chunk_add(m, need);
}

int lsm__mem_new(lsm_mem **out) {
  lsm_mem *m = quire__calloc(1, sizeof *m);
  if (!m) return QUIRE_ENOMEM;
  atomic_init(&m->refs, 1);
  atomic_init(&m->height, 1);
  /* a fixed seed: node heights (and so arena use and flush points) repeat
   * from run to run, which the crash tests rely on */
  m->rng = 0x9e3779b97f4a7c15ull;
  m->head = arena(m, node_size(LSM_MEM_MAXH));
  if (!m->head) {
    quire__free(m);
    return QUIRE_ENOMEM;
  }
  memset(m->head, 0, node_size(LSM_MEM_MAXH));
  m->head->height = LSM_MEM_MAXH;
  m->bytes = 0;
  *out = m;
  return 0;
}

void lsm__mem_ref(lsm_mem *m) { atomic_fetch_add(&m->refs, 1); }

void lsm__mem_unref(lsm_mem *m) {
  if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
  lsm_chunk *c = m->chunks;
  while (c) {
    lsm_chunk *n = c->next;
    quire__free(c);
    c = n;
  }
  quire__free(m);
}

/* node < (k, seq) in (key asc, seq desc) order */
static int node_less(const lsm_mnode *n, const void *k, size_t kl, uint64_t seq) {
  int c = lsm__keycmp(n->key, n->klen, k, kl);
  return c < 0 || (c == 0 && n->seq > seq);
}

static int rand_height(lsm_mem *m) {
  int h = 1;
  while (h < LSM_MEM_MAXH) {
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    if ((m->rng & 3) != 0) break;
    h++;
  }
  return h;
}

int lsm__mem_put(lsm_mem *m, const void *k, size_t kl, int kind, const void *v, size_t vl, uint64_t seq) {
  int h = rand_height(m);
  lsm_mnode *n = arena(m, node_size(h));
  uint8_t *kc = arena(m, kl ? kl : 1);
  uint8_t *vc = kind == LSM_V_INLINE ? arena(m, vl ? vl : 1) : NULL;
  if (!n || !kc || (kind == LSM_V_INLINE && !vc)) return QUIRE_ENOMEM;
  if (kl) memcpy(kc, k, kl);
  if (vl && vc) memcpy(vc, v, vl);
  n->key = kc;
  n->klen = (uint32_t)kl;
  n->val = vc;
  n->vlen = kind == LSM_V_INLINE ? (uint32_t)vl : 0;
  n->kind = (uint8_t)kind;
  n->seq = seq;
  n->height = (uint8_t)h;
  lsm_mnode *prev[LSM_MEM_MAXH];
  lsm_mnode *x = m->head;
  int top = atomic_load_explicit(&m->height, memory_order_relaxed);
  for (int l = LSM_MEM_MAXH - 1; l >= 0; l--) {
    if (l < top) {
      lsm_mnode *nx;
      while ((nx = atomic_load_explicit(&x->next[l], memory_order_relaxed)) && node_less(nx, k, kl, seq))
        x = nx;
    }
    prev[l] = x;
  }
  if (h > top) atomic_store_explicit(&m->height, h, memory_order_relaxed);
  for (int l = 0; l < h; l++) {
    atomic_store_explicit(&n->next[l], atomic_load_explicit(&prev[l]->next[l], memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&prev[l]->next[l], n, memory_order_release);
  }
  m->entries++;
  return 0;
}

int lsm__mem_range(lsm_mem *m, const void *lo, size_t lol, const void *hi, size_t hil, uint64_t seq) {
  lsm_mrange *r = arena(m, sizeof *r);
  uint8_t *a = arena(m, lol ? lol : 1), *b = arena(m, hil ? hil : 1);
  if (!r || !a || !b) return QUIRE_ENOMEM;
  if (lol) memcpy(a, lo, lol);
  if (hil) memcpy(b, hi, hil);
  r->r.lo = a, r->r.lol = (uint32_t)lol;
  r->r.hi = b, r->r.hil = (uint32_t)hil;
  r->seq = seq;
  atomic_store_explicit(&r->next, atomic_load_explicit(&m->ranges, memory_order_relaxed),
                        memory_order_relaxed);
  atomic_store_explicit(&m->ranges, r, memory_order_release);
  m->nranges++;
  return 0;
}

lsm_mnode *lsm__mem_seek(lsm_mem *m, const void *k, size_t kl, uint64_t snap) {
  lsm_mnode *x = m->head;
  if (!k) return atomic_load_explicit(&x->next[0], memory_order_acquire);
  int top = atomic_load_explicit(&m->height, memory_order_relaxed);
  for (int l = top - 1; l >= 0; l--) {
    lsm_mnode *nx;
    while ((nx = atomic_load_explicit(&x->next[l], memory_order_acquire)) && node_less(nx, k, kl, snap))
      x = nx;
  }
  /* The committer may have linked a newer version of k right after x since
   * the descent looked: step over anything still before (k, snap), or a
   * reader would see a commit its snapshot does not include. */
  lsm_mnode *n = atomic_load_explicit(&x->next[0], memory_order_acquire);
  while (n && node_less(n, k, kl, snap)) n = atomic_load_explicit(&n->next[0], memory_order_acquire);
  return n;
}

lsm_mnode *lsm__mem_seek_lt(lsm_mem *m, const void *k, size_t kl) {
  lsm_mnode *x = m->head;
  int top = atomic_load_explicit(&m->height, memory_order_relaxed);
  for (int l = top - 1; l >= 0; l--) {
    lsm_mnode *nx;
    while ((nx = atomic_load_explicit(&x->next[l], memory_order_acquire)) &&
           (!k || lsm__keycmp(nx->key, nx->klen, k, kl) < 0))
      x = nx;
  }
  return x == m->head ? NULL : x;
}

lsm_mnode *lsm__mem_find(lsm_mem *m, const void *k, size_t kl, uint64_t snap) {
  lsm_mnode *n = lsm__mem_seek(m, k, kl, snap);
  if (n && lsm__keycmp(n->key, n->klen, k, kl) == 0) return n;
  return NULL;
}

int lsm__mem_covered(lsm_mem *m, const void *k, size_t kl, uint64_t after, uint64_t snap) {
  return lsm__mem_covering(m, k, kl, after, snap) != NULL;
}

lsm_mnode *lsm__mem_visible(lsm_mnode *n, uint64_t snap) {
  while (n && n->seq > snap) n = lsm__mnext(n);
  return n;
}

lsm_mnode *lsm__mem_before(lsm_mem *m, const void *k, size_t kl, uint64_t snap) {
  for (;;) {
    lsm_mnode *n = lsm__mem_seek_lt(m, k, kl);
    if (!n) return NULL;
    lsm_mnode *v = lsm__mem_seek(m, n->key, n->klen, snap);
    if (v && lsm__keycmp(v->key, v->klen, n->key, n->klen) == 0) return v;
    k = n->key, kl = n->klen; /* no visible version: keep going back */
  }
}

lsm_mnode *lsm__mem_near(lsm_mem *m, const void *k, size_t kl, int op, int incl, uint64_t snap) {
  if (op == LSM_SEEK_GE) /* (k, 0) sorts after every version of k: the first key > k */
    return lsm__mem_visible(lsm__mem_seek(m, k, kl, incl ? snap : 0), snap);
  if (incl) {
    lsm_mnode *n = lsm__mem_visible(lsm__mem_seek(m, k, kl, snap), snap);
    if (n && lsm__keycmp(n->key, n->klen, k, kl) == 0) return n;
  }
  return lsm__mem_before(m, k, kl, snap);
}

const lsm_mrange *lsm__mem_covering(lsm_mem *m, const void *k, size_t kl, uint64_t after, uint64_t snap) {
  for (lsm_mrange *r = atomic_load_explicit(&m->ranges, memory_order_acquire); r;
       r = atomic_load_explicit(&r->next, memory_order_acquire)) {
    if (r->seq <= after || r->seq > snap) continue;
    if (lsm__keycmp(r->r.lo, r->r.lol, k, kl) <= 0 && lsm__keycmp(k, kl, r->r.hi, r->r.hil) < 0) return r;
  }
  return NULL;
}
