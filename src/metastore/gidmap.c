/* metastore/gidmap.c — the GID-keyed chained hash table (see gidmap.h). */
#include "metastore/gidmap.h"

#include "util/alloc.h"
#include "util/checksum.h"
#include "util/err.h"

static size_t bucket(size_t nbuckets, const quire_gid *vid) {
  return (size_t)(quire__xxh3(vid->b, QUIRE_GID_SIZE) & (nbuckets - 1));
}

int quire__gidmap_init(struct ms_gidmap *m) {
  m->count = 0;
  m->nbuckets = 64;
  m->buckets = quire__calloc(m->nbuckets, sizeof *m->buckets);
  return m->buckets ? 0 : QUIRE_ENOMEM;
}

struct ms_gid_node *quire__gidmap_find(const struct ms_gidmap *m, const quire_gid *vid) {
  struct ms_gid_node *n = m->buckets[bucket(m->nbuckets, vid)];
  while (n && quire_gid_cmp(&n->vid, vid) != 0) n = n->next;
  return n;
}

static void grow(struct ms_gidmap *m) {
  size_t nb = m->nbuckets * 2;
  struct ms_gid_node **b = quire__calloc(nb, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct ms_gid_node *n = m->buckets[i];
    while (n) {
      struct ms_gid_node *next = n->next;
      size_t h = bucket(nb, &n->vid);
      n->next = b[h];
      b[h] = n;
      n = next;
    }
  }
  quire__free(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
}

void quire__gidmap_insert(struct ms_gidmap *m, struct ms_gid_node *n) {
  size_t h = bucket(m->nbuckets, &n->vid);
  n->next = m->buckets[h];
  m->buckets[h] = n;
  if (++m->count > m->nbuckets * 2) grow(m);
}

void quire__gidmap_each(const struct ms_gidmap *m, void (*fn)(struct ms_gid_node *n, void *ctx), void *ctx) {
  for (size_t i = 0; m->buckets && i < m->nbuckets; i++) {
    struct ms_gid_node *n = m->buckets[i];
    while (n) {
      struct ms_gid_node *next = n->next; /* fn may free n */
      fn(n, ctx);
      n = next;
    }
  }
}

struct freer {
  void (*free_node)(struct ms_gid_node *n);
};

static void call_free(struct ms_gid_node *n, void *ctx) { ((struct freer *)ctx)->free_node(n); }

void quire__gidmap_free(struct ms_gidmap *m, void (*free_node)(struct ms_gid_node *n)) {
  struct freer f = {free_node};
  if (free_node) quire__gidmap_each(m, call_free, &f);
  quire__free(m->buckets);
  m->buckets = NULL;
  m->nbuckets = m->count = 0;
}
