/* metastore/gidmap.c — the GID-keyed concurrent, insert-only hash table
 * (see gidmap.h). */
#include "metastore/gidmap.h"

#include "util/alloc.h"
#include "util/checksum.h"
#include "util/err.h"

static size_t bucket(size_t nbuckets, const quire_gid *vid) {
  return (size_t)(quire__xxh3(vid->b, QUIRE_GID_SIZE) & (nbuckets - 1));
}

/* --- the concurrent table ---------------------------------------------------- */

struct ms_gidtab_arr {
  struct ms_gidtab_arr *older; /* kept until the table is freed: lookups may probe it */
  size_t cap;                  /* a power of two; at most half full */
  _Atomic(struct ms_gid_node *) slots[];
};

static struct ms_gidtab_arr *arr_new(size_t cap) {
  struct ms_gidtab_arr *a = quire__calloc(1, sizeof *a + cap * sizeof a->slots[0]);
  if (a) a->cap = cap; /* calloc: every slot NULL */
  return a;
}

/* Puts n in the first free slot of its probe sequence (the caller adds). */
static void arr_put(struct ms_gidtab_arr *a, struct ms_gid_node *n) {
  size_t i = bucket(a->cap, &n->vid);
  while (atomic_load_explicit(&a->slots[i], memory_order_relaxed)) i = (i + 1) & (a->cap - 1);
  atomic_store_explicit(&a->slots[i], n, memory_order_release);
}

int quire__gidtab_init(struct ms_gidtab *t) {
  t->count = 0;
  struct ms_gidtab_arr *a = arr_new(64);
  atomic_init(&t->arr, a);
  pthread_mutex_init(&t->mu, NULL);
  return a ? 0 : QUIRE_ENOMEM;
}

struct ms_gid_node *quire__gidtab_find(struct ms_gidtab *t, const quire_gid *vid) {
  struct ms_gidtab_arr *a = atomic_load_explicit(&t->arr, memory_order_acquire);
  for (size_t i = bucket(a->cap, vid);; i = (i + 1) & (a->cap - 1)) {
    struct ms_gid_node *n = atomic_load_explicit(&a->slots[i], memory_order_acquire);
    if (!n || quire_gid_cmp(&n->vid, vid) == 0) return n;
  }
}

struct ms_gid_node *quire__gidtab_get(struct ms_gidtab *t, const quire_gid *vid,
                                      struct ms_gid_node *(*make)(const quire_gid *vid, void *ctx),
                                      void *ctx) {
  struct ms_gid_node *n = quire__gidtab_find(t, vid);
  if (n) return n;
  pthread_mutex_lock(&t->mu);
  struct ms_gidtab_arr *a = atomic_load_explicit(&t->arr, memory_order_relaxed);
  n = quire__gidtab_find(t, vid); /* added meanwhile? */
  if (!n && (t->count + 1) * 2 > a->cap) {
    struct ms_gidtab_arr *b = arr_new(a->cap * 2);
    if (b) {
      for (size_t i = 0; i < a->cap; i++) {
        struct ms_gid_node *e = atomic_load_explicit(&a->slots[i], memory_order_relaxed);
        if (e) arr_put(b, e);
      }
      b->older = a;
      atomic_store_explicit(&t->arr, b, memory_order_release);
      a = b;
    }
  }
  if (!n && (t->count + 1) * 2 <= a->cap) {
    n = make(vid, ctx);
    if (n) {
      arr_put(a, n);
      t->count++;
    }
  }
  pthread_mutex_unlock(&t->mu);
  return n;
}

void quire__gidtab_each(struct ms_gidtab *t, void (*fn)(struct ms_gid_node *n, void *ctx), void *ctx) {
  pthread_mutex_lock(&t->mu);
  struct ms_gidtab_arr *a = atomic_load_explicit(&t->arr, memory_order_relaxed);
  for (size_t i = 0; a && i < a->cap; i++) {
    struct ms_gid_node *n = atomic_load_explicit(&a->slots[i], memory_order_relaxed);
    if (n) fn(n, ctx);
  }
  pthread_mutex_unlock(&t->mu);
}

void quire__gidtab_free(struct ms_gidtab *t, void (*free_node)(struct ms_gid_node *n)) {
  struct ms_gidtab_arr *a = atomic_load_explicit(&t->arr, memory_order_relaxed);
  for (size_t i = 0; free_node && a && i < a->cap; i++) {
    struct ms_gid_node *n = atomic_load_explicit(&a->slots[i], memory_order_relaxed);
    if (n) free_node(n);
  }
  while (a) {
    struct ms_gidtab_arr *older = a->older;
    quire__free(a);
    a = older;
  }
  atomic_store(&t->arr, NULL);
  t->count = 0;
  pthread_mutex_destroy(&t->mu);
}
