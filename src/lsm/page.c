/*
 * lsm/page.c — segment pages: parsing (every offset and length checked) and
 * the one-pass builder that turns a sorted stream into a B+tree.
 *
 * A segment is a bulk-loaded B+tree. Leaves hold (key, value) items; parents
 * hold, per child, its page, its last key and counts of leaves and point
 * tombstones below it. A page never records its parent. Range tombstones of
 * the segment live in a separate blob named by the header, not in the tree.
 *
 * Leaf and parent page (usable = page size - reserve - 8; LE integers):
 *
 *   off        size   field
 *   0          1      type: 1 leaf, 2 parent
 *   1          1      leaf: 0; parent: depth (1 = children are leaves)
 *   2          2      n, items in the page (>= 1)
 *   4          2      L, prefix length (shared by every key in the page)
 *   6          L      prefix
 *   6+L        2n     item offsets from the page start, in key order
 *   ...               items, then free space up to usable
 *
 *   leaf item:   varint S, S key-suffix bytes, varint W = (vlen << 2) | kind,
 *                then kind 0: vlen value bytes; kind 1 (overflow): varint first
 *                page of the value's run; kind 2 (tombstone): nothing (vlen 0)
 *   parent item: varint S, S bytes of the child's last-key suffix, varint child
 *                page, varint leaves below, varint point tombstones below
 *
 * Overflow runs hold one value across ceil(vlen / usable) contiguous pages,
 * usable bytes each (no per-run header; the leaf item has length and start).
 * Keys are at most (usable - 64) / 4 bytes, so every page holds at least two
 * items; values longer than (usable - 64) / 4 go to overflow runs.
 *
 * Range-tombstone blob: u32 count, then per range varint lo length, lo,
 * varint hi length, hi; ranges sorted by lo and disjoint; each is [lo, hi).
 */
#include <string.h>

#include "lsm/lsm_int.h"

int lsm__keycmp2(const uint8_t *k, size_t kl, const uint8_t *p, size_t pl, const uint8_t *s, size_t sl) {
  size_t n = kl < pl ? kl : pl;
  int c = n ? memcmp(k, p, n) : 0;
  if (c) return c;
  if (kl < pl) return -1;
  return lsm__keycmp(k + pl, kl - pl, s, sl);
}

int lsm__pview(const lsm_db *db, const uint8_t *page, lsm_pview *v) {
  v->p = page;
  v->type = page[0];
  v->depth = page[1];
  v->n = ld_le16(page + 2);
  v->plen = ld_le16(page + 4);
  v->prefix = page + LSM_PAGE_HDR;
  if (v->type == LSM_PAGE_LEAF) {
    if (v->depth != 0) return quire__err(QUIRE_ECORRUPT, "lsm: bad leaf header");
  } else if (v->type == LSM_PAGE_PARENT) {
    if (v->depth < 1 || v->depth > LSM_MAX_DEPTH) return quire__err(QUIRE_ECORRUPT, "lsm: bad parent depth");
  } else {
    return quire__err(QUIRE_ECORRUPT, "lsm: page type %u is not a tree page", v->type);
  }
  if (v->n == 0 || LSM_PAGE_HDR + (size_t)v->plen + 2 * (size_t)v->n > db->usable)
    return quire__err(QUIRE_ECORRUPT, "lsm: page item count or prefix out of range");
  return 0;
}

static inline int getv(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  if (*p < end && **p < 240) { /* the one-byte form, by far the most common */
    *v = **p;
    (*p)++;
    return 0;
  }
  int n = quire__varint_get(*p, (size_t)(end - *p), v);
  if (n < 0) return QUIRE_ECORRUPT;
  *p += n;
  return 0;
}

int lsm__pitem(const lsm_db *db, const lsm_pview *v, uint32_t i, lsm_item *it) {
  const uint8_t *end = v->p + db->usable;
  size_t base = LSM_PAGE_HDR + (size_t)v->plen + 2 * (size_t)v->n;
  if (i >= v->n) return quire__err(QUIRE_ECORRUPT, "lsm: item index out of range");
  size_t off = ld_le16(v->p + LSM_PAGE_HDR + v->plen + 2 * (size_t)i);
  if (off < base || off >= db->usable) goto bad;
  const uint8_t *p = v->p + off;
  uint64_t s;
  if (getv(&p, end, &s) || s > (uint64_t)(end - p)) goto bad;
  it->suf = p;
  it->slen = (uint32_t)s;
  p += s;
  if (v->type == LSM_PAGE_LEAF) {
    uint64_t w;
    if (getv(&p, end, &w)) goto bad;
    it->kind = (int)(w & 3);
    it->vlen = w >> 2;
    it->val = NULL;
    it->ovf = 0;
    if (it->kind == LSM_V_INLINE) {
      if (it->vlen > (uint64_t)(end - p)) goto bad;
      it->val = p;
    } else if (it->kind == LSM_V_OVERFLOW || it->kind == LSM_V_SPLIT) {
      uint64_t pg;
      if (getv(&p, end, &pg) || pg < 2 || pg > UINT32_MAX || it->vlen == 0 || it->vlen > UINT32_MAX) goto bad;
      it->ovf = (uint32_t)pg;
      if (it->kind == LSM_V_SPLIT) {
        uint64_t t = it->vlen % db->usable;
        if (it->vlen < db->usable || t == 0 || t > LSM_TAIL_MAX || t > (uint64_t)(end - p)) goto bad;
        it->val = p;
      }
    } else if (it->kind != LSM_V_TOMB || it->vlen != 0) {
      goto bad;
    }
  } else {
    if (getv(&p, end, &it->child) || getv(&p, end, &it->leaves) || getv(&p, end, &it->tombs)) goto bad;
    if (it->child < 2 || it->child > UINT32_MAX) goto bad;
  }
  return 0;
bad:
  return quire__err(QUIRE_ECORRUPT, "lsm: malformed item %u in a page", i);
}

size_t lsm__item_end(const lsm_db *db, const lsm_pview *v, const lsm_item *it) {
  size_t e = (size_t)(it->suf - v->p) + it->slen;
  if (v->type == LSM_PAGE_LEAF) {
    e += (size_t)quire__varint_len((it->vlen << 2) | (uint64_t)it->kind);
    if (it->kind == LSM_V_INLINE) e += it->vlen;
    if (lsm__is_ovf(it->kind)) e += (size_t)quire__varint_len(it->ovf);
    if (it->kind == LSM_V_SPLIT) e += (size_t)(it->vlen % db->usable);
  } else {
    e += (size_t)quire__varint_len(it->child) + (size_t)quire__varint_len(it->leaves) +
         (size_t)quire__varint_len(it->tombs);
  }
  return e;
}

/* Just the key suffix of item i (binary search needs nothing else). */
static inline int pkey(const lsm_db *db, const lsm_pview *v, uint32_t i, const uint8_t **suf,
                       uint32_t *slen) {
  const uint8_t *end = v->p + db->usable;
  size_t base = LSM_PAGE_HDR + (size_t)v->plen + 2 * (size_t)v->n;
  size_t off = ld_le16(v->p + LSM_PAGE_HDR + v->plen + 2 * (size_t)i);
  if (off < base || off >= db->usable) return quire__err(QUIRE_ECORRUPT, "lsm: item offset out of range");
  const uint8_t *p = v->p + off;
  uint64_t s;
  if (getv(&p, end, &s) || s > (uint64_t)(end - p)) return quire__err(QUIRE_ECORRUPT, "lsm: malformed key");
  *suf = p;
  *slen = (uint32_t)s;
  return 0;
}

int lsm__psearch(const lsm_db *db, const lsm_pview *v, const uint8_t *k, size_t kl, uint32_t *idx, int *eq) {
  uint32_t lo = 0, hi = v->n;
  *eq = 0;
  /* Fast path on the prefix: every key shares it. */
  size_t n = kl < v->plen ? kl : v->plen;
  int c = n ? memcmp(k, v->prefix, n) : 0;
  if (c < 0 || (c == 0 && kl < v->plen)) {
    *idx = 0;
    return 0;
  }
  if (c > 0) {
    *idx = v->n;
    return 0;
  }
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    const uint8_t *suf = NULL;
    uint32_t slen = 0;
    int rc = pkey(db, v, mid, &suf, &slen);
    if (rc) return rc;
    c = lsm__keycmp(k + v->plen, kl - v->plen, suf, slen);
    if (c == 0) {
      *idx = mid;
      *eq = 1;
      return 0;
    }
    if (c > 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *idx = lo;
  return 0;
}

/* ---- builder ----------------------------------------------------------- */
typedef struct acc_item {
  uint32_t koff, klen, poff, plen;
} acc_item;

typedef struct lsm_acc {
  quire_buf arena;
  acc_item *it;
  size_t n, cap;
  uint32_t lcp;
  size_t sum_kp, sum_vl;
  uint64_t leaves, tombs, emitted;
} lsm_acc;

struct lsm_builder {
  lsm_db *db;
  lsm_acc acc[LSM_MAX_DEPTH + 1]; /* 0 = leaves; d = parents of depth d */
  int top;
  lsm_ext run;
  uint32_t run_used;
  size_t run_idx; /* index of run in used */
  uint8_t *stage;
  uint32_t stage_first, staged, stage_cap;
  lsm_extv used;
  uint8_t *page;
  uint8_t *last;
  size_t lastlen;
  int have_last;
  uint32_t rt_page, rt_len;
  uint32_t root;
  int done;
};

int lsm__build_new(lsm_db *db, lsm_builder **out) {
  lsm_builder *b = quire__calloc(1, sizeof *b);
  if (!b) return QUIRE_ENOMEM;
  b->db = db;
  b->stage_cap = 32;
  b->stage = quire__malloc((size_t)b->stage_cap * db->pgsz);
  b->page = quire__malloc(db->pgsz);
  b->last = quire__malloc(db->klim + 1);
  if (!b->stage || !b->page || !b->last) {
    lsm__build_abort(b);
    return QUIRE_ENOMEM;
  }
  /* The arena keeps whole keys while the page stores them prefix-stripped:
   * a page of many items sharing a long prefix needs far more than a page. */
  size_t cap = ((size_t)db->usable / 4 + 1) * ((size_t)db->klim + 4 * QUIRE_VARINT_MAX + 8);
  for (int d = 0; d <= LSM_MAX_DEPTH; d++) quire__buf_init(&b->acc[d].arena, cap);
  *out = b;
  return 0;
}

static void acc_reset(lsm_acc *a) {
  quire__buf_reset(&a->arena);
  a->n = 0;
  a->lcp = 0;
  a->sum_kp = a->sum_vl = 0;
  a->leaves = a->tombs = 0;
}

static size_t common_prefix(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
  size_t n = al < bl ? al : bl, i = 0;
  while (i < n && a[i] == b[i]) i++;
  return i;
}

static int stage_flush(lsm_builder *b) {
  if (!b->staged) return 0;
  int rc = lsm__write_pages(b->db, b->stage_first, b->staged, b->stage);
  b->staged = 0;
  return rc;
}

/* Appends the page in b->page to the segment's current run; *pgno gets it. */
static int write_page(lsm_builder *b, uint32_t *pgno) {
  lsm_db *db = b->db;
  int rc;
  if (b->run_used == b->run.count) {
    if ((rc = stage_flush(b))) return rc;
    lsm_ext e;
    if ((rc = lsm__alloc(db, 1, db->block_pages, &e))) return rc;
    if ((rc = lsm__extv_push(&b->used, e.start, e.count))) {
      lsm__free_now(db, e.start, e.count);
      return rc;
    }
    b->run = e;
    b->run_used = 0;
    b->run_idx = b->used.n - 1;
  }
  uint32_t pg = b->run.start + b->run_used++;
  if (b->staged && (b->staged == b->stage_cap || b->stage_first + b->staged != pg)) {
    if ((rc = stage_flush(b))) return rc;
  }
  if (!b->staged) b->stage_first = pg;
  memcpy(b->stage + (size_t)b->staged * db->pgsz, b->page, db->pgsz);
  b->staged++;
  *pgno = pg;
  return 0;
}

static size_t acc_size(uint32_t lcp, size_t n, size_t sum_kp, size_t sum_vl) {
  return LSM_PAGE_HDR + lcp + 2 * n + sum_kp - n * lcp + sum_vl;
}

static int acc_add(lsm_builder *b, int d, const uint8_t *k, size_t kl, const uint8_t *pl, size_t pll,
                   uint64_t leaves, uint64_t tombs);

/* Writes acc d as a page and passes (page, last key, counts) to level d+1. */
static int acc_emit(lsm_builder *b, int d) {
  lsm_db *db = b->db;
  lsm_acc *a = &b->acc[d];
  uint8_t *pg = b->page;
  memset(pg, 0, db->pgsz);
  pg[0] = d == 0 ? LSM_PAGE_LEAF : LSM_PAGE_PARENT;
  pg[1] = (uint8_t)d;
  st_le16(pg + 2, (uint16_t)a->n);
  st_le16(pg + 4, (uint16_t)a->lcp);
  memcpy(pg + LSM_PAGE_HDR, a->arena.data + a->it[0].koff, a->lcp);
  size_t off = LSM_PAGE_HDR + a->lcp + 2 * a->n;
  for (size_t i = 0; i < a->n; i++) {
    acc_item *it = &a->it[i];
    st_le16(pg + LSM_PAGE_HDR + a->lcp + 2 * i, (uint16_t)off);
    uint32_t s = it->klen - a->lcp;
    off += (size_t)quire__varint_put(pg + off, s);
    memcpy(pg + off, a->arena.data + it->koff + a->lcp, s);
    off += s;
    memcpy(pg + off, a->arena.data + it->poff, it->plen);
    off += it->plen;
  }
  if (QUIRE_NEVER(off > db->usable)) return QUIRE_EINTERNAL;
  uint32_t pgno;
  int rc = write_page(b, &pgno);
  if (rc) return rc;
  a->emitted++;
  if (d + 1 > LSM_MAX_DEPTH) return quire__err(QUIRE_ETOOLARGE, "lsm: segment too deep");
  uint8_t payload[3 * QUIRE_VARINT_MAX];
  size_t pl = 0;
  uint64_t leaves = d == 0 ? 1 : a->leaves, tombs = a->tombs;
  pl += (size_t)quire__varint_put(payload + pl, pgno);
  pl += (size_t)quire__varint_put(payload + pl, leaves);
  pl += (size_t)quire__varint_put(payload + pl, tombs);
  acc_item *last = &a->it[a->n - 1];
  /* the last key lives in a's arena; level d+1 copies it before a resets */
  rc = acc_add(b, d + 1, a->arena.data + last->koff, last->klen, payload, pl, leaves, tombs);
  acc_reset(a);
  return rc;
}

static int acc_add(lsm_builder *b, int d, const uint8_t *k, size_t kl, const uint8_t *pl, size_t pll,
                   uint64_t leaves, uint64_t tombs) {
  lsm_db *db = b->db;
  lsm_acc *a = &b->acc[d];
  int rc;
  if (d > b->top) b->top = d;
  for (int attempt = 0; attempt < 2; attempt++) {
    uint32_t lcp = (uint32_t)kl;
    size_t vl = 0;
    if (a->n) {
      lcp = (uint32_t)common_prefix(a->arena.data + a->it[0].koff, a->it[0].klen, k, kl);
      if (lcp > a->lcp) lcp = a->lcp;
      if (lcp != a->lcp) {
        for (size_t i = 0; i < a->n; i++) vl += (size_t)quire__varint_len(a->it[i].klen - lcp);
      } else {
        vl = a->sum_vl;
      }
    }
    if (lcp > 65535) lcp = 65535;
    size_t nvl = vl + (size_t)quire__varint_len(kl - lcp);
    size_t size = acc_size(lcp, a->n + 1, a->sum_kp + kl + pll, nvl);
    if (size <= db->usable) {
      if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        acc_item *it = quire__realloc(a->it, cap * sizeof *it);
        if (!it) return QUIRE_ENOMEM;
        a->it = it, a->cap = cap;
      }
      acc_item *it = &a->it[a->n];
      it->koff = (uint32_t)a->arena.len;
      it->klen = (uint32_t)kl;
      if ((rc = quire__buf_append(&a->arena, k, kl))) return rc == QUIRE_ETOOLARGE ? QUIRE_EINTERNAL : rc;
      it->poff = (uint32_t)a->arena.len;
      it->plen = (uint32_t)pll;
      if ((rc = quire__buf_append(&a->arena, pl, pll))) return rc == QUIRE_ETOOLARGE ? QUIRE_EINTERNAL : rc;
      a->n++;
      a->lcp = lcp;
      a->sum_kp += kl + pll;
      a->sum_vl = nvl;
      a->leaves += leaves;
      a->tombs += tombs;
      return 0;
    }
    if (a->n == 0) break;
    if ((rc = acc_emit(b, d))) return rc;
  }
  return quire__err(QUIRE_EINTERNAL, "lsm: item does not fit an empty page");
}

int lsm__build_add(lsm_builder *b, const void *k, size_t kl, int kind, const void *v, size_t vl) {
  lsm_db *db = b->db;
  int rc;
  if (kl > db->klim) return quire__err(QUIRE_ETOOLARGE, "lsm: key of %zu bytes (limit %u)", kl, db->klim);
  if (vl > UINT32_MAX) return quire__err(QUIRE_ETOOLARGE, "lsm: value over 4 GiB");
  if (b->have_last && lsm__keycmp(k, kl, b->last, b->lastlen) <= 0)
    return quire__err(QUIRE_EINVAL, "lsm: segment keys must be strictly ascending");
  uint8_t payload[2 * QUIRE_VARINT_MAX + LSM_TAIL_MAX];
  const uint8_t *pl = payload;
  size_t pll = 0;
  uint8_t *tmp = NULL;
  if (kind == LSM_V_TOMB) {
    pll = (size_t)quire__varint_put(payload, LSM_V_TOMB);
  } else if (vl > db->vinline) {
    /* whole pages on a run; a short last piece inline (split) */
    size_t t = vl % db->usable;
    int split = vl > db->usable && t && t <= LSM_TAIL_MAX;
    uint32_t first;
    if ((rc = lsm__blob_write(db, v, vl - (split ? t : 0), &b->used, &first))) return rc;
    pll = (size_t)quire__varint_put(payload, ((uint64_t)vl << 2) | (split ? LSM_V_SPLIT : LSM_V_OVERFLOW));
    pll += (size_t)quire__varint_put(payload + pll, first);
    if (split) {
      memcpy(payload + pll, (const uint8_t *)v + vl - t, t);
      pll += t;
    }
  } else {
    tmp = quire__malloc(QUIRE_VARINT_MAX + vl);
    if (!tmp) return QUIRE_ENOMEM;
    pll = (size_t)quire__varint_put(tmp, (uint64_t)vl << 2);
    if (vl) memcpy(tmp + pll, v, vl);
    pll += vl;
    pl = tmp;
  }
  rc = acc_add(b, 0, k, kl, pl, pll, 1, kind == LSM_V_TOMB);
  quire__free(tmp);
  if (rc) return rc;
  if (kl) memcpy(b->last, k, kl);
  b->lastlen = kl;
  b->have_last = 1;
  return 0;
}

int lsm__build_add_ref(lsm_builder *b, const void *k, size_t kl, uint64_t vlen, uint32_t ovf,
                       const uint8_t *tail) {
  lsm_db *db = b->db;
  if (kl > db->klim) return quire__err(QUIRE_ETOOLARGE, "lsm: key of %zu bytes (limit %u)", kl, db->klim);
  if (vlen == 0 || vlen > UINT32_MAX || ovf < 2)
    return quire__err(QUIRE_EINVAL, "lsm: bad overflow reference");
  if (b->have_last && lsm__keycmp(k, kl, b->last, b->lastlen) <= 0)
    return quire__err(QUIRE_EINVAL, "lsm: segment keys must be strictly ascending");
  uint8_t payload[2 * QUIRE_VARINT_MAX + LSM_TAIL_MAX];
  size_t t = tail ? vlen % db->usable : 0;
  if (tail && (vlen < db->usable || t == 0 || t > LSM_TAIL_MAX))
    return quire__err(QUIRE_EINVAL, "lsm: bad split value reference");
  size_t pll = (size_t)quire__varint_put(payload, (vlen << 2) | (tail ? LSM_V_SPLIT : LSM_V_OVERFLOW));
  pll += (size_t)quire__varint_put(payload + pll, ovf);
  if (t) {
    memcpy(payload + pll, tail, t);
    pll += t;
  }
  int rc = acc_add(b, 0, k, kl, payload, pll, 1, 0);
  if (rc) return rc;
  if (kl) memcpy(b->last, k, kl);
  b->lastlen = kl;
  b->have_last = 1;
  return 0;
}

/* Recycling a subtree of depth `depth` writes out the pending pages at
 * depths 0..depth first. It is clean (writes no page below half full) when,
 * going up from depth 0, every level that will be written is at least half
 * full: a level is written if it holds items or receives the item of the
 * level below it being written; the received item is the last key added so
 * far plus a parent payload, and must also fit (if it did not, the level
 * would be written full and the received item alone would then be written
 * as a page of one item). Levels that are empty and receive nothing are not
 * written. The recycled child itself goes to level depth + 1, which is not
 * written now, so its fill does not matter. The estimate of the received
 * item is an upper bound, so "clean" is never claimed wrongly. */
int lsm__build_clean(const lsm_builder *b, uint32_t depth) {
  const lsm_db *db = b->db;
  int incoming = 0;
  if (depth > LSM_MAX_DEPTH) return 0;
  for (uint32_t d = 0; d <= depth; d++) {
    const lsm_acc *a = &b->acc[d];
    if (!a->n && !incoming) continue;
    size_t size = a->n ? acc_size(a->lcp, a->n, a->sum_kp, a->sum_vl) : 0;
    if (incoming) {
      size_t kl = b->lastlen, lcp = a->lcp, vl = a->sum_vl;
      if (a->n) {
        size_t c = common_prefix(a->arena.data + a->it[0].koff, a->it[0].klen, b->last, b->lastlen);
        if (c < lcp) lcp = c, vl += a->n; /* each suffix-length varint grows by at most a byte */
      } else {
        lcp = kl;
      }
      size_t pl = 3 * QUIRE_VARINT_MAX;
      size = acc_size((uint32_t)lcp, a->n + 1, a->sum_kp + kl + pl, vl + (size_t)quire__varint_len(kl - lcp));
      if (size > db->usable) return 0;
      if (!a->n) return 0; /* a page holding only the received item */
      size = acc_size(a->lcp, a->n, a->sum_kp, a->sum_vl);
    }
    if (size < db->usable / 2) return 0;
    incoming = 1;
  }
  return 1;
}

/* A copied page's items (rest bytes of them still to come at this depth)
 * that would overflow the pending page: filling the pending page full first
 * would leave a tail of less than about half a page, which stays pending and
 * keeps lsm__build_clean refusing the next recycled sibling (a resync that
 * can run on for many siblings). Cutting where the pending page holds as
 * much as the rest splits the total in two halves instead. */
int lsm__build_split(lsm_builder *b, uint32_t depth, size_t rest) {
  const lsm_db *db = b->db;
  if (depth > LSM_MAX_DEPTH) return 0;
  const lsm_acc *a = &b->acc[depth];
  if (!a->n) return 0;
  size_t size = acc_size(a->lcp, a->n, a->sum_kp, a->sum_vl), u = db->usable;
  size_t total = size + rest;
  if (total <= u || total >= u + u / 2 + u / 8 || size < rest || size < u / 2 || !lsm__build_clean(b, depth))
    return 0;
  for (uint32_t d = 0; d <= depth; d++) {
    int rc;
    if (b->acc[d].n && (rc = acc_emit(b, (int)d))) return rc;
  }
  return 1;
}

int lsm__build_add_child(lsm_builder *b, uint32_t depth, const void *k, size_t kl, uint32_t page,
                         uint64_t leaves, uint64_t tombs) {
  lsm_db *db = b->db;
  int rc;
  if (depth + 1 > LSM_MAX_DEPTH) return quire__err(QUIRE_ETOOLARGE, "lsm: segment too deep");
  if (kl > db->klim) return quire__err(QUIRE_ETOOLARGE, "lsm: key of %zu bytes (limit %u)", kl, db->klim);
  if (page < 2 || leaves == 0) return quire__err(QUIRE_EINVAL, "lsm: bad recycled child");
  if (b->have_last && lsm__keycmp(k, kl, b->last, b->lastlen) <= 0)
    return quire__err(QUIRE_EINVAL, "lsm: segment keys must be strictly ascending");
  for (uint32_t d = 0; d <= depth; d++)
    if (b->acc[d].n && (rc = acc_emit(b, (int)d))) return rc;
  uint8_t payload[3 * QUIRE_VARINT_MAX];
  size_t pl = 0;
  pl += (size_t)quire__varint_put(payload + pl, page);
  pl += (size_t)quire__varint_put(payload + pl, leaves);
  pl += (size_t)quire__varint_put(payload + pl, tombs);
  if ((rc = acc_add(b, (int)depth + 1, k, kl, payload, pl, leaves, tombs))) return rc;
  if (kl) memcpy(b->last, k, kl);
  b->lastlen = kl;
  b->have_last = 1;
  return 0;
}

int lsm__build_ranges(lsm_builder *b, const lsm_range *r, size_t n) {
  if (!n) return 0;
  quire_buf blob;
  quire__buf_init(&blob, (size_t)1 << 31);
  int rc = quire__buf_append_le32(&blob, (uint32_t)n);
  for (size_t i = 0; i < n && !rc; i++) {
    rc = quire__buf_append_varint(&blob, r[i].lol);
    if (!rc) rc = quire__buf_append(&blob, r[i].lo, r[i].lol);
    if (!rc) rc = quire__buf_append_varint(&blob, r[i].hil);
    if (!rc) rc = quire__buf_append(&blob, r[i].hi, r[i].hil);
  }
  if (!rc) rc = lsm__blob_write(b->db, blob.data, blob.len, &b->used, &b->rt_page);
  if (!rc) b->rt_len = (uint32_t)blob.len;
  quire__buf_free(&blob);
  return rc;
}

static void build_free(lsm_builder *b) {
  for (int d = 0; d <= LSM_MAX_DEPTH; d++) {
    quire__buf_free(&b->acc[d].arena);
    quire__free(b->acc[d].it);
  }
  lsm__extv_free(&b->used);
  quire__free(b->stage);
  quire__free(b->page);
  quire__free(b->last);
  quire__free(b);
}

void lsm__build_abort(lsm_builder *b) {
  if (!b) return;
  for (size_t i = 0; i < b->used.n; i++) lsm__free_now(b->db, b->used.v[i].start, b->used.v[i].count);
  build_free(b);
}

int lsm__build_finish(lsm_builder *b, lsm_segdesc *d, lsm_extv *pages) {
  int rc = 0;
  memset(d, 0, sizeof *d);
  /* Emit every level bottom-up (each emission passes one item up). The top
   * level always has items and was never emitted; when it holds a single
   * child, that child (written here or recycled) is the root. */
  if (b->top > 0 || b->acc[0].n) {
    for (int lvl = 0; lvl <= LSM_MAX_DEPTH; lvl++) {
      lsm_acc *a = &b->acc[lvl];
      if (lvl > 0 && lvl == b->top && a->n == 1) {
        /* its page number is the first payload varint */
        uint64_t child;
        if (quire__varint_get(a->arena.data + a->it[0].poff, a->it[0].plen, &child) < 0) {
          rc = QUIRE_EINTERNAL;
          goto fail;
        }
        b->root = (uint32_t)child;
        break;
      }
      if (a->n && (rc = acc_emit(b, lvl))) goto fail;
    }
  }
  if ((rc = stage_flush(b))) goto fail;
  if (b->run.count > b->run_used) {
    uint32_t tail = b->run.count - b->run_used;
    lsm__free_now(b->db, b->run.start + b->run_used, tail);
    b->used.v[b->run_idx].count -= tail;
  }
  d->root = b->root;
  d->rt_page = b->rt_page;
  d->rt_len = b->rt_len;
  if (pages) {
    for (size_t i = 0; i < b->used.n; i++) {
      if (!b->used.v[i].count) continue;
      if ((rc = lsm__extv_push(pages, b->used.v[i].start, b->used.v[i].count))) goto fail;
    }
  }
  build_free(b);
  return 0;
fail:
  lsm__build_abort(b);
  return rc;
}
