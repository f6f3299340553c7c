/*
 * metastore/gidmap.h — the chained hash table from volume ids to entries
 * that the metastore's in-memory tables share (volumes, catalog entries).
 * An entry embeds struct ms_gid_node as its first member and is converted
 * back with a cast of the node pointer. The table grows when chains get
 * long; a growth that cannot allocate only leaves the chains longer. Not
 * thread-safe: the owner locks.
 */
#ifndef QUIRE_METASTORE_GIDMAP_H
#define QUIRE_METASTORE_GIDMAP_H

#include <stddef.h>

#include "quire/ids.h"

struct ms_gid_node {
  struct ms_gid_node *next;
  quire_gid vid;
};

struct ms_gidmap {
  struct ms_gid_node **buckets;
  size_t nbuckets, count;
};

/* An empty table. QUIRE_ENOMEM. */
int quire__gidmap_init(struct ms_gidmap *m);
struct ms_gid_node *quire__gidmap_find(const struct ms_gidmap *m, const quire_gid *vid);
/* Adds n (whose vid must not be in the table yet). */
void quire__gidmap_insert(struct ms_gidmap *m, struct ms_gid_node *n);
/* Calls free_node on every entry (may be NULL), then frees the table. */
void quire__gidmap_free(struct ms_gidmap *m, void (*free_node)(struct ms_gid_node *n));
/* Calls fn on every entry. */
void quire__gidmap_each(const struct ms_gidmap *m, void (*fn)(struct ms_gid_node *n, void *ctx), void *ctx);

#endif
