/*
 * metastore/gidmap.h — the hash table from volume ids to entries that the
 * metastore's and the catalogs' in-memory tables share (volumes, catalog
 * entries). An entry embeds struct ms_gid_node as its first member and is
 * converted back with a cast of the node pointer.
 */
#ifndef QUIRE_METASTORE_GIDMAP_H
#define QUIRE_METASTORE_GIDMAP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "quire/ids.h"

struct ms_gid_node {
  quire_gid vid;
};

/* The tables are read on hot paths (the catalogs' latest LSNs, the
 * metastore's volumes): entries are only ever added, never removed until
 * the table is freed, and a lookup takes no lock — it loads
 * the current slot array and probes it (open addressing, linear probing).
 * Adding takes the table's mutex; a growth publishes a new array with every
 * entry and keeps the old ones alive (a lookup may still be probing them)
 * until the table is freed, so memory is below twice the final array. A
 * lookup that races an insertion of the same id may miss it, which is what
 * a lookup just before the insertion would have seen. */
struct ms_gidtab_arr;
struct ms_gidtab {
  _Atomic(struct ms_gidtab_arr *) arr;
  pthread_mutex_t mu; /* serialises additions; guards count */
  size_t count;
};

int quire__gidtab_init(struct ms_gidtab *t);
/* Lock-free; NULL when vid has no entry. */
struct ms_gid_node *quire__gidtab_find(struct ms_gidtab *t, const quire_gid *vid);
/* The entry for vid, created with make(ctx) when there is none (make
 * returns a node with node->vid set, or NULL: then NULL is returned, which
 * callers report as QUIRE_ENOMEM). The growth that cannot allocate leaves
 * the table fuller: a table never overfills, so a failed growth is NULL. */
struct ms_gid_node *quire__gidtab_get(struct ms_gidtab *t, const quire_gid *vid,
                                      struct ms_gid_node *(*make)(const quire_gid *vid, void *ctx),
                                      void *ctx);
/* Calls fn on every entry, under the table's mutex (fn must not add). */
void quire__gidtab_each(struct ms_gidtab *t, void (*fn)(struct ms_gid_node *n, void *ctx), void *ctx);
/* Calls free_node on every entry (may be NULL), then frees the table. No
 * other call may run meanwhile. */
void quire__gidtab_free(struct ms_gidtab *t, void (*free_node)(struct ms_gid_node *n));

#endif
