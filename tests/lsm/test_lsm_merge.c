/*
 * The partial merge (src/lsm/merge.c) against a model. Source S and
 * destination D are built directly with the segment builder (random sizes
 * from one leaf to thousands, keys with shared prefixes or fixed-width hex,
 * inline and overflow values, tombstones, sometimes range tombstones in S),
 * then merged with random windows, compaction pointers and older key spans.
 * After each merge:
 *   (a) reading S' then D' gives what reading S then D gave (values exactly;
 *       deleted vs absent only where an older segment could hold the key),
 *       D' has the expected ranges, and tombstones add up:
 *       tombs(S) + tombs(D) = tombs(S') + tombs(D') + tombs_dropped;
 *   (b) S' and D' pass the strict checker walk (order, parent keys, counts,
 *       depths, no page used twice);
 *   (c) page accounting: freed = pages(S) u pages(D) minus pages(S') u
 *       pages(D'), written = the new pages exactly;
 *   (d) no page written by the merge is below half full unless it is on its
 *       tree's right edge (fixed-width keys; with shared prefixes the plain
 *       builder's prefix effects can make thin pages, so there it is printed);
 *   (e) cost: a window of W leaves into a large D writes
 *       < 4 * (W + overlapping D leaves) + 8 * depth pages (printed);
 * plus 1,000 small merges into one growing D keep its depth within
 * ceil(log_{fanout/2}(leaves)) + 2 and no thin pages off the right edge.
 */
#include <stdio.h>
#include <string.h>

#include "lsm/lsm_int.h"
#include "util/alloc.h"
#include "test.h"

static char path[512];
static lsm_db *db;

/* ---- model ---------------------------------------------------------------- */
typedef struct ent {
  uint8_t *k, *v;
  uint32_t kl, vl;
  int kind; /* LSM_V_INLINE (any length; long ones go to overflow), LSM_V_TOMB */
} ent;

typedef struct ents {
  ent *e;
  size_t n, cap;
} ents;

static int kcmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
  return lsm__keycmp(a, al, b, bl);
}

static int ent_cmp(const void *x, const void *y) {
  const ent *a = x, *b = y;
  return kcmp(a->k, a->kl, b->k, b->kl);
}

static void ents_push(ents *s, const uint8_t *k, size_t kl, int kind, const uint8_t *v, size_t vl) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 256;
    s->e = realloc(s->e, s->cap * sizeof *s->e);
    CHECK(s->e);
  }
  ent *e = &s->e[s->n++];
  e->k = malloc(kl + 1);
  e->v = malloc(vl + 1);
  CHECK(e->k && e->v);
  memcpy(e->k, k, kl);
  if (vl) memcpy(e->v, v, vl);
  e->kl = (uint32_t)kl, e->vl = (uint32_t)vl, e->kind = kind;
}

static void ents_free(ents *s) {
  for (size_t i = 0; i < s->n; i++) free(s->e[i].k), free(s->e[i].v);
  free(s->e);
  memset(s, 0, sizeof *s);
}

/* sorts and removes duplicate keys (keeps the first) */
static void ents_sort(ents *s) {
  if (s->n) qsort(s->e, s->n, sizeof *s->e, ent_cmp);
  size_t o = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (o && kcmp(s->e[o - 1].k, s->e[o - 1].kl, s->e[i].k, s->e[i].kl) == 0) {
      free(s->e[i].k), free(s->e[i].v);
      continue;
    }
    s->e[o++] = s->e[i];
  }
  s->n = o;
}

static const ent *ents_find(const ents *s, const uint8_t *k, size_t kl) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = kcmp(s->e[mid].k, s->e[mid].kl, k, kl);
    if (c == 0) return &s->e[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* ---- keys and values ------------------------------------------------------ */
static int keymode; /* 0 fixed-width hex, 1 shared prefixes */
static uint64_t universe = 1000000;

static size_t make_key(uint64_t x, uint8_t *k) {
  if (keymode == 0)
    return (size_t)snprintf((char *)k, 40, "%016llx", (unsigned long long)(x * 0x9E3779B97F4A7C15ull));
  /* groups of a shared prefix, then a number, then 0..3 more bytes */
  return (size_t)snprintf((char *)k, 64, "tenant/%02llu/obj%07llu%.*s", (unsigned long long)(x % 17),
                          (unsigned long long)x, (int)(x % 4), "~~~~");
}

static size_t make_val(uint64_t seed, uint8_t *v, size_t big) {
  size_t n;
  uint64_t r = seed * 0x2545F4914F6CDD1Dull;
  if (big && r % 13 == 0)
    n = 1100 + (size_t)(r >> 20) % 4000; /* overflow */
  else
    n = (size_t)(r >> 24) % 160;
  for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(seed + i * 31);
  return n;
}

/* n random entries; tomb_pct percent tombstones */
static void gen(ents *s, size_t n, uint64_t lo, uint64_t span, int tomb_pct, int big, uint64_t vseed) {
  static uint8_t k[128], v[8192];
  for (size_t i = 0; i < n; i++) {
    uint64_t x = lo + test_rand_below(span);
    size_t kl = make_key(x, k);
    if ((int)test_rand_below(100) < tomb_pct) {
      ents_push(s, k, kl, LSM_V_TOMB, NULL, 0);
    } else {
      size_t vl = make_val(x ^ vseed, v, big);
      ents_push(s, k, kl, LSM_V_INLINE, v, vl);
    }
  }
  ents_sort(s);
}

static lsm_seg *build(const ents *s, const lsm_range *r, size_t nr) {
  lsm_builder *b;
  CHECK_OK(lsm__build_new(db, &b));
  for (size_t i = 0; i < s->n; i++)
    CHECK_OK(lsm__build_add(b, s->e[i].k, s->e[i].kl, s->e[i].kind, s->e[i].v, s->e[i].vl));
  CHECK_OK(lsm__build_ranges(b, r, nr));
  lsm_segdesc d;
  CHECK_OK(lsm__build_finish(b, &d, NULL));
  CHECK(d.root || d.rt_page);
  lsm_seg *seg;
  CHECK_OK(lsm__seg_load(db, &d, &seg));
  return seg;
}

static lsm_seg *load_opt(const lsm_segdesc *d) {
  if (!d->root && !d->rt_page) return NULL;
  lsm_seg *s;
  CHECK_OK(lsm__seg_load(db, d, &s));
  return s;
}

/* every entry of a segment, values read back (overflow runs too) */
static void read_seg(lsm_seg *seg, ents *out) {
  if (!seg || !seg->d.root) return;
  lsm_src *c;
  CHECK_OK(lsm__segcur_open(db, seg, &c));
  static uint8_t v[8192];
  CHECK_OK(c->ops->first(c));
  while (c->valid) {
    const uint8_t *val = c->val;
    if (lsm__is_ovf(c->kind)) {
      CHECK(c->vlen <= sizeof v);
      CHECK_OK(c->ops->value(c, 0, v, c->vlen));
      val = v;
    }
    ents_push(out, c->key, c->klen, c->kind == LSM_V_TOMB ? LSM_V_TOMB : LSM_V_INLINE, val, c->vlen);
    CHECK_OK(c->ops->next(c));
  }
  c->ops->close(c);
}

/* ---- pages ---------------------------------------------------------------- */
typedef struct bits {
  uint8_t *b;
  uint32_t n;
} bits;

static void bits_init(bits *x) {
  x->n = atomic_load(&db->npages) + 1;
  x->b = calloc(x->n / 8 + 1, 1);
  CHECK(x->b);
}
static int bit(const bits *x, uint32_t p) { return p < x->n && (x->b[p >> 3] >> (p & 7)) & 1; }
static void bits_ext(bits *x, const lsm_extv *e) {
  for (size_t i = 0; i < e->n; i++)
    for (uint32_t p = e->v[i].start; p < e->v[i].start + e->v[i].count; p++) {
      CHECK(p < x->n);
      x->b[p >> 3] |= (uint8_t)(1u << (p & 7));
    }
}
static void bits_seg(bits *x, lsm_seg *s) {
  if (!s) return;
  lsm_extv e = {0};
  CHECK_OK(lsm__seg_pages(db, &s->d, &e));
  bits_ext(x, &e);
  lsm__extv_free(&e);
}

/* Bytes used by a tree page (header, prefix, offsets, items). */
static size_t page_used(const lsm_pview *v) {
  size_t end = LSM_PAGE_HDR + v->plen + 2 * (size_t)v->n;
  for (uint32_t i = 0; i < v->n; i++) {
    lsm_item it;
    CHECK_OK(lsm__pitem(db, v, i, &it));
    size_t e = lsm__item_end(db, v, &it);
    if (e > end) end = e;
  }
  return end;
}

typedef struct shape {
  uint64_t thin_written, thin_old, pages, leaves;
  uint64_t wpages, wbytes; /* written non-edge pages and their bytes used */
  uint32_t depth;
  /* leaves in order: first and last key (for overlap counting) */
  ents firsts, lasts;
} shape;

static void walk_shape(uint32_t pg, int edge, const bits *written, shape *sh, int keep_keys) {
  lsm_page *p;
  lsm_pview v;
  CHECK_OK(lsm__page_get(db, pg, &p));
  CHECK_OK(lsm__pview(db, p->data, &v));
  sh->pages++;
  if (!edge && written && bit(written, pg)) sh->wpages++, sh->wbytes += page_used(&v);
  if (!edge && page_used(&v) < db->usable / 2) {
    if (written && bit(written, pg))
      sh->thin_written++;
    else
      sh->thin_old++;
  }
  if (v.type == LSM_PAGE_LEAF) {
    sh->leaves++;
    if (keep_keys) {
      uint8_t k[1200];
      for (uint32_t i = 0; i < v.n; i += v.n - 1) {
        lsm_item it;
        CHECK_OK(lsm__pitem(db, &v, i, &it));
        memcpy(k, v.prefix, v.plen);
        memcpy(k + v.plen, it.suf, it.slen);
        ents_push(i == 0 ? &sh->firsts : &sh->lasts, k, v.plen + it.slen, LSM_V_TOMB, NULL, 0);
        if (v.n == 1) {
          ents_push(&sh->lasts, k, v.plen + it.slen, LSM_V_TOMB, NULL, 0);
          break;
        }
      }
    }
  } else {
    for (uint32_t i = 0; i < v.n; i++) {
      lsm_item it;
      CHECK_OK(lsm__pitem(db, &v, i, &it));
      walk_shape((uint32_t)it.child, edge && i == v.n - 1, written, sh, keep_keys);
    }
  }
  lsm__page_put(db, p);
}

static void seg_shape(lsm_seg *s, const bits *written, shape *sh, int keep_keys) {
  memset(sh, 0, sizeof *sh);
  if (!s || !s->d.root) return;
  sh->depth = s->depth;
  walk_shape(s->d.root, 1, written, sh, keep_keys);
}

static uint64_t nreports;
static void report(void *ctx, const char *msg) {
  (void)ctx;
  nreports++;
  fprintf(stderr, "check: %s\n", msg);
}

/* (b): the strict walk of the checker over S' and D' together */
static void strict_check(lsm_seg *a, lsm_seg *b) {
  lsm_hdr h = db->hdr;
  h.n_in = h.n_wait = 0;
  h.n_reg = 0;
  if (a) h.seg[h.n_reg++] = a->d;
  if (b) h.seg[h.n_reg++] = b->d;
  uint8_t *bm = NULL;
  nreports = 0;
  pthread_mutex_lock(&db->commit_lock);
  int rc = lsm__reachable(db, &h, &bm, 1, report, NULL);
  pthread_mutex_unlock(&db->commit_lock);
  CHECK_OK(rc);
  CHECK(nreports == 0);
  free(bm);
}

static uint64_t seg_tombs(lsm_seg *s) { return s ? s->tombs : 0; }

/* ---- one merge ------------------------------------------------------------ */
typedef struct result {
  lsm_merge_out out;
  lsm_seg *sn, *dn;
  shape ssh, dsh;
} result;

enum { R_VALUE, R_DELETED, R_ABSENT };

static int view(const ents *a, const lsm_seg *as, const ents *b, const lsm_seg *bs, const uint8_t *k,
                size_t kl, const ent **val) {
  const ent *e = ents_find(a, k, kl);
  if (e) return *val = e, e->kind == LSM_V_TOMB ? R_DELETED : R_VALUE;
  if (as && as->nranges && lsm__ranges_cover(as->ranges, as->nranges, k, kl)) return R_DELETED;
  e = ents_find(b, k, kl);
  if (e) return *val = e, e->kind == LSM_V_TOMB ? R_DELETED : R_VALUE;
  if (bs && bs->nranges && lsm__ranges_cover(bs->ranges, bs->nranges, k, kl)) return R_DELETED;
  return R_ABSENT;
}

static int in_older(const lsm_merge_in *in, const uint8_t *k, size_t kl) {
  for (size_t i = 0; i < in->nolder; i++)
    if (kcmp(k, kl, in->older[i].lo, in->older[i].lol) >= 0 &&
        kcmp(k, kl, in->older[i].hi, in->older[i].hil) <= 0)
      return 1;
  return 0;
}

static void check_contents(const lsm_merge_in *in, const ents *se, const ents *de, result *r) {
  lsm_seg *S = in->src, *D = in->dst;
  ents sn = {0}, dn = {0};
  read_seg(r->sn, &sn);
  read_seg(r->dn, &dn);
  const ents *sets[4] = {se, de, &sn, &dn};
  for (int s = 0; s < 4; s++) {
    for (size_t i = 0; i < sets[s]->n; i++) {
      const uint8_t *k = sets[s]->e[i].k;
      size_t kl = sets[s]->e[i].kl;
      const ent *want = NULL, *got = NULL;
      int w = view(se, S, de, D, k, kl, &want);
      int g = view(&sn, r->sn, &dn, r->dn, k, kl, &got);
      if (w == R_VALUE || g == R_VALUE) {
        CHECKF(w == g, "key %.*s: want %d got %d", (int)kl, k, w, g);
        CHECK(want->vl == got->vl && memcmp(want->v, got->v, want->vl) == 0);
      } else if (in_older(in, k, kl)) {
        CHECKF(w == g, "key %.*s (older span): want %d got %d", (int)kl, k, w, g);
      }
    }
  }
  /* what stayed in S' is exactly S minus a key span; nothing of it is in D' */
  for (size_t i = 0; i < sn.n; i++) {
    const ent *e = ents_find(se, sn.e[i].k, sn.e[i].kl);
    CHECK(e && e->kind == sn.e[i].kind);
  }
  /* ranges of D' */
  int drop = in->nolder == 0 && !in->older_ranges;
  CHECK(!r->sn || r->sn->nranges == 0);
  if (drop) {
    CHECK(!r->dn || r->dn->nranges == 0);
  } else {
    lsm_range rr[64];
    size_t k = 0;
    for (size_t i = 0; i < S->nranges; i++) rr[k++] = S->ranges[i];
    for (size_t i = 0; D && i < D->nranges; i++) rr[k++] = D->ranges[i];
    k = lsm__ranges_coalesce(rr, k);
    size_t have = r->dn ? r->dn->nranges : 0;
    CHECK(have == k);
    for (size_t i = 0; i < k; i++) {
      CHECK(kcmp(rr[i].lo, rr[i].lol, r->dn->ranges[i].lo, r->dn->ranges[i].lol) == 0);
      CHECK(kcmp(rr[i].hi, rr[i].hil, r->dn->ranges[i].hi, r->dn->ranges[i].hil) == 0);
    }
  }
  /* tombstones add up, and the loaded counts match the entries */
  uint64_t ts = 0, td = 0;
  for (size_t i = 0; i < sn.n; i++) ts += sn.e[i].kind == LSM_V_TOMB;
  for (size_t i = 0; i < dn.n; i++) td += dn.e[i].kind == LSM_V_TOMB;
  CHECK(ts == seg_tombs(r->sn) && td == seg_tombs(r->dn));
  CHECK(seg_tombs(S) + seg_tombs(D) == ts + td + r->out.tombs_dropped);
  ents_free(&sn);
  ents_free(&dn);
}

/* Runs the merge and checks (a)-(d); the caller frees r. */
static void merge_check(const lsm_merge_in *in, const ents *se, const ents *de, result *r,
                        int expect_no_thin) {
  lsm_seg *S = in->src, *D = in->dst;
  memset(r, 0, sizeof *r);
  CHECK_OK(lsm__merge_partial(db, in, &r->out));
  r->sn = load_opt(&r->out.src_new);
  r->dn = load_opt(&r->out.dst_new);
  /* (b) */
  strict_check(r->sn, r->dn);
  /* (c) */
  bits old, nw, fr, wr;
  bits_init(&old), bits_init(&nw), bits_init(&fr), bits_init(&wr);
  bits_seg(&old, S);
  bits_seg(&old, D);
  bits_seg(&nw, r->sn);
  bits_seg(&nw, r->dn);
  bits_ext(&fr, &r->out.freed);
  bits_ext(&wr, &r->out.written);
  CHECK(r->out.written_pages == lsm__extv_pages(&r->out.written));
  for (uint32_t p = 0; p < old.n; p++) {
    int o = bit(&old, p), n = bit(&nw, p), f = bit(&fr, p), w = bit(&wr, p);
    CHECKF(f == (o && !n), "page %u: old %d new %d freed %d", p, o, n, f);
    CHECKF(w == (n && !o), "page %u: old %d new %d written %d", p, o, n, w);
  }
  /* (d) */
  seg_shape(r->sn, &wr, &r->ssh, 0);
  seg_shape(r->dn, &wr, &r->dsh, 0);
  if (expect_no_thin) CHECK(r->ssh.thin_written + r->dsh.thin_written == 0);
  free(old.b), free(nw.b), free(fr.b), free(wr.b);
  /* (a) */
  check_contents(in, se, de, r);
  if (in->window == 0 || in->window >= S->leaves || S->nranges) CHECK(!r->sn);
  CHECK(r->out.promoted_leaves <= S->leaves);
}

static void result_free(result *r) {
  lsm__seg_unref(db, r->sn);
  lsm__seg_unref(db, r->dn);
  lsm__merge_out_free(&r->out);
}

/* Gives the pages of segment s back (they are in no header). */
static void seg_release(lsm_seg *s) {
  if (!s) return;
  lsm_extv e = {0};
  CHECK_OK(lsm__seg_pages(db, &s->d, &e));
  for (size_t i = 0; i < e.n; i++) lsm__free_now(db, e.v[i].start, e.v[i].count);
  lsm__extv_free(&e);
  lsm__seg_unref(db, s);
}

static void open_db(uint32_t page_size, uint32_t reserve) {
  lsm_options o;
  lsm_options_init(&o);
  o.create = 1;
  o.page_size = page_size;
  o.reserve_bytes = reserve;
  o.merge_off = 1;
  o.sync_mode = LSM_SYNC_OFF;
  o.cache_bytes = 16u << 20;
  CHECK_OK(lsm_open(path, &o, &db));
}

static size_t log_size(uint64_t maxn) {
  /* 1 .. maxn, about log-uniform: a random bit length, then a number of it */
  int bitsn = 0;
  while (((uint64_t)1 << bitsn) <= maxn) bitsn++;
  uint64_t top = (uint64_t)1 << test_rand_below((uint64_t)bitsn);
  uint64_t n = top + test_rand_below(top);
  return (size_t)(n > maxn ? maxn : n);
}

/* n random key spans of [0, uni) as older segments' spans (keys in ok) */
static void random_spans(lsm_keyspan *older, uint8_t (*ok)[2][64], size_t n, uint64_t uni) {
  for (size_t i = 0; i < n; i++) {
    uint64_t a = test_rand_below(uni), b = test_rand_below(uni);
    size_t al = make_key(a, ok[i][0]), bl = make_key(b, ok[i][1]);
    if (kcmp(ok[i][0], al, ok[i][1], bl) > 0)
      older[i] = (lsm_keyspan){ok[i][1], ok[i][0], (uint32_t)bl, (uint32_t)al};
    else
      older[i] = (lsm_keyspan){ok[i][0], ok[i][1], (uint32_t)al, (uint32_t)bl};
  }
}

/* ---- the random model test -------------------------------------------------- */
static void test_random(int rounds) {
  static uint8_t k1[128];
  uint64_t thin_prefix = 0, merges = 0, written = 0, recycled = 0, wpages = 0, wbytes = 0;
  for (int round = 0; round < rounds; round++) {
    keymode = (int)test_rand_below(2);
    int big = test_rand_below(3) == 0;
    ents se = {0}, de = {0};
    size_t nd = test_rand_below(6) == 0 ? 0 : log_size(big ? 4000 : 30000);
    size_t ns = log_size(big ? 2000 : 10000);
    int clustered = test_rand_below(3) == 0;
    uint64_t slo = clustered ? test_rand_below(universe) : 0,
             sspan = clustered ? 1 + universe / 50 : universe;
    gen(&de, nd, 0, universe, (int)test_rand_below(30), big, 1);
    gen(&se, ns, slo, sspan, (int)test_rand_below(40), big, 2);
    lsm_range rr[4];
    size_t nr = 0;
    uint8_t rk[4][2][64];
    if (test_rand_below(5) == 0) {
      nr = 1 + test_rand_below(3);
      for (size_t i = 0; i < nr; i++) {
        uint64_t a = test_rand_below(universe), b = a + 1 + test_rand_below(universe / 20);
        size_t al = make_key(a, rk[i][0]), bl = make_key(b, rk[i][1]);
        if (kcmp(rk[i][0], al, rk[i][1], bl) > 0) {
          rr[i] = (lsm_range){rk[i][1], rk[i][0], (uint32_t)bl, (uint32_t)al};
        } else if (kcmp(rk[i][0], al, rk[i][1], bl) == 0) {
          nr = i;
          break;
        } else {
          rr[i] = (lsm_range){rk[i][0], rk[i][1], (uint32_t)al, (uint32_t)bl};
        }
      }
      nr = lsm__ranges_coalesce(rr, nr);
    }
    lsm_range dr[2];
    size_t ndr = 0;
    uint8_t dk[2][64];
    if (test_rand_below(6) == 0) {
      uint64_t a = test_rand_below(universe);
      size_t al = make_key(a, dk[0]), bl = make_key(a + 7, dk[1]);
      if (kcmp(dk[0], al, dk[1], bl) < 0) dr[ndr++] = (lsm_range){dk[0], dk[1], (uint32_t)al, (uint32_t)bl};
    }
    lsm_seg *S = build(&se, rr, nr);
    lsm_seg *D = nd || ndr ? build(&de, dr, ndr) : NULL;
    if (!D) ents_free(&de);
    /* older spans */
    lsm_keyspan older[3];
    uint8_t ok[3][2][64];
    size_t nolder = test_rand_below(3) == 0 ? 0 : test_rand_below(4);
    random_spans(older, ok, nolder, universe);
    static const uint32_t wins[] = {0, 1, 2, 3, 5, 17, 64, 300};
    lsm_merge_in in = {.src = S, .dst = D, .older = older, .nolder = nolder};
    in.older_ranges = nolder > 0 || test_rand_below(4) == 0;
    in.window = test_rand_below(9) == 8 ? (uint32_t)S->leaves : wins[test_rand_below(8)];
    if (test_rand_below(2)) {
      in.afterlen = (uint32_t)make_key(test_rand_below(universe), k1);
      in.after = k1;
    }
    result r;
    merge_check(&in, &se, &de, &r, keymode == 0);
    thin_prefix += r.ssh.thin_written + r.dsh.thin_written;
    wpages += r.ssh.wpages + r.dsh.wpages;
    wbytes += r.ssh.wbytes + r.dsh.wbytes;
    merges++;
    written += r.out.written_pages;
    recycled += r.out.recycled;
    /* a window is promoted: something moved, and the pointer is its end */
    if (S->d.root) CHECK(r.out.promoted_leaves >= 1 && r.out.next);
    if (r.sn) {
      /* the window: S minus S' is one key span ending at out.next; it holds a
       * tombstone if S had any, else it starts at the first leaf ending
       * after the compaction pointer (so what S' keeps below it is <= the
       * pointer), or at the start when no leaf ends after it */
      ents sn = {0};
      read_seg(r.sn, &sn);
      const ent *first = NULL, *last = NULL;
      uint64_t mt = 0;
      for (size_t i = 0; i < se.n; i++) {
        if (ents_find(&sn, se.e[i].k, se.e[i].kl)) continue;
        if (!first) first = &se.e[i];
        last = &se.e[i];
        mt += se.e[i].kind == LSM_V_TOMB;
      }
      CHECK(first && kcmp(last->k, last->kl, r.out.next, r.out.nextlen) == 0);
      for (size_t i = 0; i < sn.n; i++) /* contiguous: nothing of S' inside the span */
        CHECK(kcmp(sn.e[i].k, sn.e[i].kl, first->k, first->kl) < 0 ||
              kcmp(sn.e[i].k, sn.e[i].kl, last->k, last->kl) > 0);
      if (S->tombs) {
        CHECK(mt > 0);
      } else if (in.after && kcmp(S->maxkey, S->maxlen, in.after, in.afterlen) > 0) {
        for (size_t i = 0; i < sn.n && kcmp(sn.e[i].k, sn.e[i].kl, first->k, first->kl) < 0; i++)
          CHECK(kcmp(sn.e[i].k, sn.e[i].kl, in.after, in.afterlen) <= 0);
        CHECK(kcmp(last->k, last->kl, in.after, in.afterlen) > 0);
      } else {
        CHECK(kcmp(first->k, first->kl, se.e[0].k, se.e[0].kl) == 0);
      }
      ents_free(&sn);
    }
    /* give every page back: what is still reached, and what the merge freed */
    for (size_t i = 0; i < r.out.freed.n; i++)
      lsm__free_now(db, r.out.freed.v[i].start, r.out.freed.v[i].count);
    lsm__extv_free(&r.out.freed);
    seg_release(r.sn);
    seg_release(r.dn);
    r.sn = r.dn = NULL;
    result_free(&r);
    lsm__seg_unref(db, S);
    lsm__seg_unref(db, D);
    ents_free(&se);
    ents_free(&de);
  }
  printf("random: %llu merges, %llu pages written, %llu subtrees recycled, %llu thin written pages "
         "(shared-prefix keys; fixed-width keys: 0 asserted), written pages off the right edge %.0f%% full\n",
         (unsigned long long)merges, (unsigned long long)written, (unsigned long long)recycled,
         (unsigned long long)thin_prefix,
         wpages ? 100.0 * (double)wbytes / ((double)wpages * db->usable) : 0.0);
}

/* ---- batched sources: S plus newer segments promoted together ------------ */
/* The answer for k from lists newest first (their segments' ranges too). */
static int view_n(const ents *const *l, lsm_seg *const *sg, size_t n, const uint8_t *k, size_t kl,
                  const ent **val) {
  for (size_t i = 0; i < n; i++) {
    const ent *e = l[i] ? ents_find(l[i], k, kl) : NULL;
    if (e) return *val = e, e->kind == LSM_V_TOMB ? R_DELETED : R_VALUE;
    if (sg[i] && sg[i]->nranges && lsm__ranges_cover(sg[i]->ranges, sg[i]->nranges, k, kl)) return R_DELETED;
  }
  return R_ABSENT;
}

/* A window of S and the same key span of up to LSM_MAX_BATCH - 1 newer,
 * overlapping sources go into D in one merge (levels.c's Waiting passes):
 * the newest version wins, shadowed versions' overflow runs are freed
 * (page accounting exact), what each source keeps is itself minus the
 * span, and the view newest-first is unchanged. */
static void test_batch(int rounds) {
  static uint8_t k1[128];
  uint64_t merges = 0, shadowed_runs = 0;
  for (int round = 0; round < rounds; round++) {
    keymode = (int)test_rand_below(2);
    int big = test_rand_below(2) == 0;
    uint32_t nnewer = 1 + (uint32_t)test_rand_below(LSM_MAX_BATCH - 1);
    ents in_e[LSM_MAX_BATCH + 1], out_e[LSM_MAX_BATCH + 1];
    lsm_seg *in_s[LSM_MAX_BATCH + 1], *out_s[LSM_MAX_BATCH + 1];
    memset(in_e, 0, sizeof in_e), memset(out_e, 0, sizeof out_e);
    memset(in_s, 0, sizeof in_s), memset(out_s, 0, sizeof out_s);
    /* in_e[0..nnewer-1] newer (newest first), [nnewer] S, [nnewer+1] D;
     * small universes so the sources overlap a lot */
    uint64_t uni = test_rand_below(2) ? 3000 : universe;
    int with_ranges = test_rand_below(3) == 0;
    for (uint32_t i = 0; i <= nnewer; i++) {
      gen(&in_e[i], log_size(big ? 1500 : 6000), 0, uni, (int)test_rand_below(30), big, 10 + i);
      if (!in_e[i].n) gen(&in_e[i], 1, 0, uni, 0, big, 10 + i);
      /* sometimes a range tombstone (the whole batch is then promoted at once) */
      lsm_range rr[1];
      uint8_t rk[2][64];
      size_t nr = 0;
      if (with_ranges && test_rand_below(3) == 0) {
        uint64_t a = test_rand_below(uni), b = a + 1 + test_rand_below(uni / 10 + 1);
        size_t al = make_key(a, rk[0]), bl = make_key(b, rk[1]);
        int x = kcmp(rk[0], al, rk[1], bl);
        if (x < 0) rr[nr++] = (lsm_range){rk[0], rk[1], (uint32_t)al, (uint32_t)bl};
        if (x > 0) rr[nr++] = (lsm_range){rk[1], rk[0], (uint32_t)bl, (uint32_t)al};
      }
      in_s[i] = build(&in_e[i], rr, nr);
    }
    uint32_t di = nnewer + 1;
    if (test_rand_below(5)) {
      gen(&in_e[di], log_size(20000), 0, uni, (int)test_rand_below(20), big, 99);
      if (in_e[di].n) in_s[di] = build(&in_e[di], NULL, 0);
    }
    lsm_keyspan older[2];
    uint8_t ok[2][2][64];
    size_t nolder = test_rand_below(2) ? 0 : 1 + test_rand_below(2);
    random_spans(older, ok, nolder, uni);
    static const uint32_t wins[] = {0, 1, 2, 3, 7, 40, 300};
    lsm_seg *S = in_s[nnewer], *D = in_s[di];
    lsm_merge_in in = {.src = S, .newer = in_s, .nnewer = nnewer, .dst = D, .older = older, .nolder = nolder};
    in.older_ranges = nolder > 0 || test_rand_below(3) == 0;
    in.window = wins[test_rand_below(7)];
    if (test_rand_below(2)) {
      in.afterlen = (uint32_t)make_key(test_rand_below(uni), k1);
      in.after = k1;
    }
    lsm_merge_out out;
    CHECK_OK(lsm__merge_partial(db, &in, &out));
    for (uint32_t i = 0; i < nnewer; i++) out_s[i] = load_opt(&out.newer_new[i]);
    out_s[nnewer] = load_opt(&out.src_new);
    out_s[di] = load_opt(&out.dst_new);
    for (uint32_t i = 0; i <= di; i++) {
      strict_check(out_s[i], NULL);
      read_seg(out_s[i], &out_e[i]);
    }
    /* pages: freed = old minus new, written = new minus old */
    bits old, nw, fr, wr;
    bits_init(&old), bits_init(&nw), bits_init(&fr), bits_init(&wr);
    for (uint32_t i = 0; i <= di; i++) bits_seg(&old, in_s[i]), bits_seg(&nw, out_s[i]);
    bits_ext(&fr, &out.freed);
    bits_ext(&wr, &out.written);
    CHECK(out.written_pages == lsm__extv_pages(&out.written));
    for (uint32_t p = 0; p < old.n; p++) {
      int o = bit(&old, p), n = bit(&nw, p), f = bit(&fr, p), w = bit(&wr, p);
      CHECKF(f == (o && !n), "batch: page %u: old %d new %d freed %d", p, o, n, f);
      CHECKF(w == (n && !o), "batch: page %u: old %d new %d written %d", p, o, n, w);
    }
    free(old.b), free(nw.b), free(fr.b), free(wr.b);
    /* the view, newest first, is unchanged */
    const ents *il[LSM_MAX_BATCH + 1], *ol[LSM_MAX_BATCH + 1];
    for (uint32_t i = 0; i <= di; i++) il[i] = &in_e[i], ol[i] = &out_e[i];
    uint64_t tin = 0, tout = 0;
    for (uint32_t i = 0; i <= di; i++) tin += seg_tombs(in_s[i]), tout += seg_tombs(out_s[i]);
    CHECK(tin == tout + out.tombs_dropped);
    for (uint32_t l = 0; l <= di; l++) {
      const ents *set;
      for (int side = 0; side < 2; side++) {
        set = side ? ol[l] : il[l];
        for (size_t i = 0; i < set->n; i++) {
          const uint8_t *k = set->e[i].k;
          size_t kl = set->e[i].kl;
          const ent *want = NULL, *got = NULL;
          int w = view_n(il, in_s, di + 1, k, kl, &want), g = view_n(ol, out_s, di + 1, k, kl, &got);
          if (w == R_VALUE || g == R_VALUE) {
            CHECKF(w == g, "batch: key %.*s: want %d got %d", (int)kl, k, w, g);
            CHECK(want->vl == got->vl && memcmp(want->v, got->v, want->vl) == 0);
          } else if (in_older(&in, k, kl)) {
            CHECKF(w == g, "batch: key %.*s (older span): want %d got %d", (int)kl, k, w, g);
          }
        }
      }
    }
    /* each source keeps a part of itself, and none of the promoted span of S */
    const ent *first = NULL, *last = NULL;
    for (size_t i = 0; i < in_e[nnewer].n; i++) {
      if (ents_find(&out_e[nnewer], in_e[nnewer].e[i].k, in_e[nnewer].e[i].kl)) continue;
      if (!first) first = &in_e[nnewer].e[i];
      last = &in_e[nnewer].e[i];
    }
    CHECK(first != NULL); /* something of S moved */
    for (uint32_t s = 0; s <= nnewer; s++) {
      if (!out_s[nnewer]) CHECK(!out_s[s]); /* S gone whole: the span was everything */
      for (size_t i = 0; i < out_e[s].n; i++) {
        const ent *e = ents_find(&in_e[s], out_e[s].e[i].k, out_e[s].e[i].kl);
        CHECK(e && e->kind == out_e[s].e[i].kind && e->vl == out_e[s].e[i].vl);
        CHECK(kcmp(e->k, e->kl, first->k, first->kl) < 0 || kcmp(e->k, e->kl, last->k, last->kl) > 0);
      }
    }
    /* a shadowed overflow value: its run was freed (counted for the printout) */
    for (size_t i = 0; i < out.freed.n; i++) shadowed_runs += out.freed.v[i].count > 1;
    merges++;
    for (size_t i = 0; i < out.freed.n; i++) lsm__free_now(db, out.freed.v[i].start, out.freed.v[i].count);
    lsm__extv_free(&out.freed);
    for (uint32_t i = 0; i <= di; i++) {
      seg_release(out_s[i]);
      lsm__seg_unref(db, in_s[i]);
      ents_free(&in_e[i]);
      ents_free(&out_e[i]);
    }
    lsm__merge_out_free(&out);
  }
  printf("batch: %llu merges of 2..%d sources, %llu freed multi-page runs\n", (unsigned long long)merges,
         LSM_MAX_BATCH, (unsigned long long)shadowed_runs);
}

/* The builder's recycling: trees made only of recycled children, mixed with
 * added keys, pass the strict walk and keep their contents. */
static void test_builder_recycle(void) {
  keymode = 0;
  ents a = {0};
  gen(&a, 3000, 0, universe, 10, 0, 3);
  lsm_seg *s = build(&a, NULL, 0);
  CHECK(s->depth >= 1);
  /* the root's children, recycled one by one, give the same tree contents */
  lsm_page *p;
  lsm_pview v;
  CHECK_OK(lsm__page_get(db, s->d.root, &p));
  CHECK_OK(lsm__pview(db, p->data, &v));
  for (int variant = 0; variant < 3; variant++) {
    lsm_builder *b;
    CHECK_OK(lsm__build_new(db, &b));
    CHECK(lsm__build_clean(b, 5));
    uint32_t n = variant == 2 ? 1 : v.n;
    for (uint32_t i = 0; i < n; i++) {
      lsm_item it;
      CHECK_OK(lsm__pitem(db, &v, i, &it));
      uint8_t k[64];
      memcpy(k, v.prefix, v.plen);
      memcpy(k + v.plen, it.suf, it.slen);
      CHECK_OK(
          lsm__build_add_child(b, v.depth - 1, k, v.plen + it.slen, (uint32_t)it.child, it.leaves, it.tombs));
      /* keys must stay ascending */
      CHECK_RC(lsm__build_add(b, k, v.plen + it.slen, LSM_V_TOMB, NULL, 0), QUIRE_EINVAL);
    }
    if (variant == 1) { /* then more keys after */
      uint8_t k[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0};
      CHECK_OK(lsm__build_add(b, k, 8, LSM_V_INLINE, "x", 1));
      CHECK(!lsm__build_clean(b, 0)); /* one small leaf pending */
    }
    lsm_segdesc d;
    lsm_extv w = {0};
    CHECK_OK(lsm__build_finish(b, &d, &w));
    if (variant == 0) CHECK(w.n > 0 || v.n == 1); /* a new root over the recycled children */
    if (variant == 2) {
      CHECK(w.n == 0); /* the single child is the root itself: nothing written */
      lsm_item it;
      CHECK_OK(lsm__pitem(db, &v, 0, &it));
      CHECK(d.root == it.child);
    }
    lsm_seg *t = load_opt(&d);
    strict_check(t, NULL);
    ents got = {0};
    read_seg(t, &got);
    if (variant == 0) {
      CHECK(got.n == a.n);
      for (size_t i = 0; i < a.n; i++) CHECK(kcmp(got.e[i].k, got.e[i].kl, a.e[i].k, a.e[i].kl) == 0);
      CHECK(t->leaves == s->leaves && t->tombs == s->tombs);
    }
    ents_free(&got);
    for (size_t i = 0; i < w.n; i++) lsm__free_now(db, w.v[i].start, w.v[i].count);
    lsm__extv_free(&w);
    lsm__seg_unref(db, t);
  }
  lsm__page_put(db, p);
  seg_release(s);
  ents_free(&a);
}

/* (e): cost of one window into a large D, disjoint and random keys. */
static void test_cost(uint64_t dleaves) {
  keymode = 0;
  ents de = {0};
  /* ~9 entries of ~400 bytes per leaf */
  static uint8_t k[64], v[512];
  uint64_t n = dleaves * 9;
  for (uint64_t i = 0; i < n; i++) {
    size_t kl = (size_t)snprintf((char *)k, sizeof k, "%016llx", (unsigned long long)(i * 2 + 1) << 20);
    memset(v, (int)i, 400);
    ents_push(&de, k, kl, LSM_V_INLINE, v, 400);
  }
  lsm_seg *D = build(&de, NULL, 0);
  printf("cost: D has %llu leaves, depth %u\n", (unsigned long long)D->leaves, D->depth);
  static const uint32_t ws[] = {1, 8, 64, 512};
  for (int disjoint = 1; disjoint >= 0; disjoint--) {
    for (int wi = 0; wi < 4; wi++) {
      uint32_t W = ws[wi];
      ents se = {0};
      uint64_t m = (uint64_t)W * 4 * 9;
      uint64_t at = test_rand_below(n);
      for (uint64_t i = 0; i < m; i++) {
        size_t kl;
        if (disjoint) /* all between two neighbouring keys of D */
          kl = (size_t)snprintf((char *)k, sizeof k, "%016llx/%08llu", (unsigned long long)(at * 2 + 1) << 20,
                                (unsigned long long)i);
        else
          kl = (size_t)snprintf((char *)k, sizeof k, "%016llx",
                                (unsigned long long)test_rand_below(n * 2) << 20);
        memset(v, (int)i + 1, 400);
        ents_push(&se, k, kl, LSM_V_INLINE, v, 400);
      }
      ents_sort(&se);
      lsm_seg *S = build(&se, NULL, 0);
      lsm_merge_in in = {.src = S, .dst = D, .window = W, .older_ranges = 1};
      uint8_t after[64];
      size_t al = (size_t)snprintf((char *)after, sizeof after, "%016llx",
                                   (unsigned long long)test_rand_below(n * 2) << 20);
      in.after = after, in.afterlen = (uint32_t)al;
      result r;
      merge_check(&in, &se, &de, &r, 1);
      /* overlapping D leaves: those whose key range meets the promoted span */
      shape dsh;
      seg_shape(D, NULL, &dsh, 1);
      ents moved = {0};
      ents sn = {0};
      read_seg(r.sn, &sn);
      for (size_t i = 0; i < se.n; i++)
        if (!ents_find(&sn, se.e[i].k, se.e[i].kl)) ents_push(&moved, se.e[i].k, se.e[i].kl, 0, NULL, 0);
      CHECK(moved.n > 0);
      const ent *lo = &moved.e[0], *hi = &moved.e[moved.n - 1];
      uint64_t overlap = 0;
      for (size_t i = 0; i < dsh.leaves; i++) {
        /* leaf i covers (last[i-1], last[i]] */
        int after_lo = kcmp(dsh.lasts.e[i].k, dsh.lasts.e[i].kl, lo->k, lo->kl) >= 0;
        int before_hi = i == 0 || kcmp(dsh.lasts.e[i - 1].k, dsh.lasts.e[i - 1].kl, hi->k, hi->kl) < 0;
        overlap += after_lo && before_hi;
      }
      /* touched D leaves: those a promoted key lands in (past the end: the last) */
      uint64_t touched = 0;
      size_t prev_leaf = SIZE_MAX;
      for (size_t i = 0; i < moved.n; i++) {
        size_t a = 0, b = dsh.leaves;
        while (a < b) {
          size_t mid = (a + b) / 2;
          if (kcmp(dsh.lasts.e[mid].k, dsh.lasts.e[mid].kl, moved.e[i].k, moved.e[i].kl) < 0)
            a = mid + 1;
          else
            b = mid;
        }
        if (a == dsh.leaves) a = dsh.leaves - 1;
        if (a != prev_leaf) touched++, prev_leaf = a;
      }
      uint32_t depth = D->depth > S->depth ? D->depth : S->depth;
      uint64_t bound = 4 * (r.out.promoted_leaves + overlap) + 8 * (depth + 1);
      uint64_t tight = 4 * (r.out.promoted_leaves + touched) + 8 * (depth + 1);
      printf("cost: %s W=%-4u promoted %4llu leaves, D leaves in the span %5llu, touched %5llu, written "
             "%5llu pages "
             "(bound %llu), recycled %llu subtrees, D' depth %u\n",
             disjoint ? "disjoint" : "random  ", W, (unsigned long long)r.out.promoted_leaves,
             (unsigned long long)overlap, (unsigned long long)touched,
             (unsigned long long)r.out.written_pages, (unsigned long long)tight,
             (unsigned long long)r.out.recycled, r.dn ? r.dn->depth : 0);
      uint64_t wp = r.ssh.wpages + r.dsh.wpages, wb = r.ssh.wbytes + r.dsh.wbytes;
      printf("      written pages off the right edge: %llu, %.0f%% full\n", (unsigned long long)wp,
             wp ? 100.0 * (double)wb / ((double)wp * db->usable) : 0.0);
      CHECK(r.out.written_pages < tight);
      CHECK(r.out.written_pages < bound);
      CHECK(r.out.promoted_leaves >= 1 && r.out.promoted_leaves <= W);
      ents_free(&dsh.firsts);
      ents_free(&dsh.lasts);
      ents_free(&moved);
      ents_free(&sn);
      /* put the written pages back; D stays as it was for the next round */
      for (size_t i = 0; i < r.out.written.n; i++)
        lsm__free_now(db, r.out.written.v[i].start, r.out.written.v[i].count);
      result_free(&r);
      seg_release(S);
      ents_free(&se);
    }
  }
  seg_release(D);
  ents_free(&de);
}

/* 1,000 small windows into one growing D: depth stays logarithmic, no thin
 * pages off the right edge (the "thin, deep right edge" regression). */
static void test_depth(int merges) {
  keymode = 0;
  lsm_seg *D = NULL;
  ents de = {0};
  uint64_t written = 0;
  for (int i = 0; i < merges; i++) {
    ents se = {0};
    int seq = i % 3 == 0; /* sometimes appends at the end (time-ordered keys) */
    static uint8_t k[64], v[256];
    size_t m = 20 + test_rand_below(60);
    for (size_t j = 0; j < m; j++) {
      size_t kl = seq ? (size_t)snprintf((char *)k, sizeof k, "~%08d%04zu", i, j)
                      : (size_t)snprintf((char *)k, sizeof k, "%016llx", (unsigned long long)test_rand());
      size_t vl = 50 + test_rand_below(150);
      memset(v, (int)j, vl);
      ents_push(&se, k, kl, LSM_V_INLINE, v, vl);
    }
    ents_sort(&se);
    lsm_seg *S = build(&se, NULL, 0);
    lsm_merge_in in = {.src = S, .dst = D, .window = (uint32_t)(1 + test_rand_below(4)), .older_ranges = 1};
    lsm_merge_out out;
    CHECK_OK(lsm__merge_partial(db, &in, &out));
    written += out.written_pages;
    for (size_t j = 0; j < out.freed.n; j++) lsm__free_now(db, out.freed.v[j].start, out.freed.v[j].count);
    lsm_seg *sn = load_opt(&out.src_new), *dn = load_opt(&out.dst_new);
    /* the rest of S is left behind; only D is kept growing */
    ents sn_e = {0};
    read_seg(sn, &sn_e);
    for (size_t j = 0; j < se.n; j++)
      if (!ents_find(&sn_e, se.e[j].k, se.e[j].kl))
        ents_push(&de, se.e[j].k, se.e[j].kl, se.e[j].kind, se.e[j].v, se.e[j].vl);
    ents_free(&sn_e);
    seg_release(sn);
    lsm__merge_out_free(&out);
    lsm__seg_unref(db, S);
    lsm__seg_unref(db, D);
    D = dn;
    ents_free(&se);
    if (i % 100 == 99 || i == merges - 1) {
      ents_sort(&de);
      shape sh;
      seg_shape(D, NULL, &sh, 0);
      /* parent items: 16-23 byte keys + 3 varints + offset <= 40 bytes */
      uint64_t half = (db->usable / 2) / 40, reach = 1;
      uint32_t lim = 2;
      while (reach < D->leaves) reach *= half, lim++; /* ceil(log_half(leaves)) + 2 */
      CHECKF(D->depth <= lim, "depth %u over %u with %llu leaves", D->depth, lim,
             (unsigned long long)D->leaves);
      CHECK(sh.thin_old == 0);
      strict_check(D, NULL);
      ents got = {0};
      read_seg(D, &got);
      CHECK(got.n == de.n);
      for (size_t j = 0; j < got.n; j++) {
        CHECK(kcmp(got.e[j].k, got.e[j].kl, de.e[j].k, de.e[j].kl) == 0);
        CHECK(got.e[j].vl == de.e[j].vl && memcmp(got.e[j].v, de.e[j].v, got.e[j].vl) == 0);
      }
      ents_free(&got);
      if (i == merges - 1)
        printf(
            "depth: %d merges, D has %llu leaves, depth %u (limit %u), %llu pages written (%.1f per merge)\n",
            merges, (unsigned long long)D->leaves, D->depth, lim, (unsigned long long)written,
            (double)written / merges);
    }
  }
  seg_release(D);
  ents_free(&de);
}

/* Keys sharing a long prefix: hundreds of them fit a page once the prefix
 * is stored once; the builder's arena (whole keys) must take them all. */
static void test_long_prefix(void) {
  ents a = {0};
  uint8_t k[1024];
  size_t plen = lsm_max_key_len(db) - 8;
  memset(k, 'P', plen);
  for (int i = 0; i < 3000; i++) {
    size_t kl = plen + (size_t)snprintf((char *)k + plen, 9, "%06d", i);
    ents_push(&a, k, kl, i % 3 ? LSM_V_TOMB : LSM_V_INLINE, (const uint8_t *)"v", 1);
  }
  lsm_seg *s = build(&a, NULL, 0);
  strict_check(s, NULL);
  ents got = {0};
  read_seg(s, &got);
  CHECK(got.n == a.n);
  printf("long prefix: %zu keys of %zu bytes in %llu leaves\n", a.n, plen + 6, (unsigned long long)s->leaves);
  CHECK(s->leaves < 100);
  ents_free(&got);
  seg_release(s);
  ents_free(&a);
}

static uint64_t pages_in_use(void) {
  pthread_mutex_lock(&db->lock);
  uint64_t n = atomic_load(&db->npages) - lsm__extv_pages(&db->free);
  pthread_mutex_unlock(&db->lock);
  return n;
}

/* Flips a byte of page pgno on disk (or puts the saved copy back). */
static void poke(uint32_t pgno, uint8_t *save, int restore) {
  if (!restore) {
    CHECK_OK(db->file->ops->read(db->file, save, db->pgsz, (uint64_t)(pgno - 1) * db->pgsz));
    uint8_t *bad = malloc(db->pgsz);
    CHECK(bad);
    memcpy(bad, save, db->pgsz);
    bad[100] ^= 0x5a;
    CHECK_OK(db->file->ops->write(db->file, bad, db->pgsz, (uint64_t)(pgno - 1) * db->pgsz));
    free(bad);
  } else {
    CHECK_OK(db->file->ops->write(db->file, save, db->pgsz, (uint64_t)(pgno - 1) * db->pgsz));
  }
  lsm__cache_forget(db, pgno, 1);
}

static uint32_t edge_page(lsm_seg *s, uint32_t depth_wanted) {
  uint32_t pg = s->d.root;
  for (uint32_t d = s->depth; d > depth_wanted; d--) {
    lsm_page *p;
    lsm_pview v;
    lsm_item it;
    CHECK_OK(lsm__page_get(db, pg, &p));
    CHECK_OK(lsm__pview(db, p->data, &v));
    CHECK_OK(lsm__pitem(db, &v, v.n - 1, &it));
    pg = (uint32_t)it.child;
    lsm__page_put(db, p);
  }
  return pg;
}

/* A damaged page of S or D that the merge reads: QUIRE_ECORRUPT, out left
 * empty, every page written given back. */
static void test_corrupt(void) {
  keymode = 0;
  ents se = {0}, de = {0};
  gen(&de, 20000, 0, universe, 10, 0, 1);
  gen(&se, 3000, 0, universe, 0, 0, 2);
  lsm_seg *S = build(&se, NULL, 0), *D = build(&de, NULL, 0);
  CHECK(D->depth >= 1 && S->depth >= 1);
  /* the window is S's first two leaves; D's root and right edge, S's root
   * and S's last leaf (its right edge is always rewritten) are all read */
  const uint32_t targets[] = {D->d.root, edge_page(D, 0), edge_page(D, 1), S->d.root, edge_page(S, 0)};
  uint8_t *save = malloc(db->pgsz);
  CHECK(save);
  for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) {
    lsm_merge_in in = {.src = S, .dst = D, .window = 2, .older_ranges = 1};
    uint64_t used0 = pages_in_use();
    poke(targets[t], save, 0);
    lsm_merge_out out;
    int rc = lsm__merge_partial(db, &in, &out);
    poke(targets[t], save, 1);
    CHECKF(rc == QUIRE_ECORRUPT, "target %zu: %s", t, quire_strerror(rc));
    CHECK(out.freed.n == 0 && out.written.n == 0 && !out.next);
    CHECK(pages_in_use() == used0);
  }
  /* and intact, it works */
  lsm_merge_in in = {.src = S, .dst = D, .window = 2, .older_ranges = 1};
  result r;
  merge_check(&in, &se, &de, &r, 1);
  for (size_t i = 0; i < r.out.written.n; i++)
    lsm__free_now(db, r.out.written.v[i].start, r.out.written.v[i].count);
  result_free(&r);
  free(save);
  seg_release(S);
  seg_release(D);
  ents_free(&se);
  ents_free(&de);
  printf("corrupt: %zu damaged pages each failed the merge cleanly\n", sizeof targets / sizeof *targets);
}

/* Every allocation failure inside a merge: QUIRE_ENOMEM, out left empty,
 * every page it wrote given back (pages in use unchanged). */
static void test_oom(void) {
  keymode = 1;
  ents se = {0}, de = {0};
  gen(&de, 3000, 0, universe, 10, 1, 1);
  gen(&se, 600, 0, universe, 20, 1, 2);
  lsm_seg *S = build(&se, NULL, 0), *D = build(&de, NULL, 0);
  uint8_t after[64];
  size_t al = make_key(universe / 3, after);
  lsm_merge_in in = {
      .src = S, .dst = D, .window = 3, .after = after, .afterlen = (uint32_t)al, .older_ranges = 1};
  long n, failed = 0;
  for (n = 1;; n++) {
    pthread_mutex_lock(&db->lock);
    uint64_t used0 = atomic_load(&db->npages) - lsm__extv_pages(&db->free);
    pthread_mutex_unlock(&db->lock);
    lsm_merge_out out;
    quire_test_alloc_fail_at(n, 0);
    int rc = lsm__merge_partial(db, &in, &out);
    long injected = quire_test_alloc_failures();
    quire_test_alloc_fail_at(0, 0);
    if (rc == 0) {
      /* give it all back for the next round */
      for (size_t i = 0; i < out.written.n; i++)
        lsm__free_now(db, out.written.v[i].start, out.written.v[i].count);
      lsm__merge_out_free(&out);
      if (injected == 0) break;
      continue;
    }
    failed++;
    CHECKF(rc == QUIRE_ENOMEM, "allocation %ld: %s (%s)", n, quire_strerror(rc), quire_errmsg());
    CHECK(out.freed.n == 0 && out.written.n == 0 && !out.next && out.dst_new.root == 0 &&
          out.src_new.root == 0);
    pthread_mutex_lock(&db->lock);
    uint64_t used1 = atomic_load(&db->npages) - lsm__extv_pages(&db->free);
    pthread_mutex_unlock(&db->lock);
    CHECKF(used1 == used0, "allocation %ld: %llu pages in use before, %llu after", n,
           (unsigned long long)used0, (unsigned long long)used1);
  }
  printf("oom: %ld allocation sites, %ld merges failed cleanly\n", n - 1, failed);
  seg_release(S);
  seg_release(D);
  ents_free(&se);
  ents_free(&de);
}

int main(void) {
  test_seed();
  char *dir = test_tmpdir("lsm_merge");
  snprintf(path, sizeof path, "%s/db", dir);
  open_db(0, 0);
  int lng = test_long_mode();
  test_builder_recycle();
  test_oom();
  test_long_prefix();
  test_corrupt();
  test_random(lng ? 400 : 60);
  test_batch(lng ? 400 : 60);
  test_depth(1000);
  test_cost(lng ? 100000 : 10000);
  CHECK_OK(lsm_close(db));
  /* another page size, with reserved bytes */
  snprintf(path, sizeof path, "%s/db16", dir);
  open_db(16384, 100);
  test_random(lng ? 100 : 15);
  test_depth(lng ? 1000 : 200);
  CHECK_OK(lsm_close(db));
  test_rmtree(dir);
  free(dir);
  return test_done("test_lsm_merge");
}
