/*
 * core/snapshot.h — a snapshot of a volume as the metastore reports it
 * (DESIGN.md §1, docs/PROTOCOL.md "Common messages"): the commit at one LSN
 * with the volume's logical size and who made it. A plain value: no pointers,
 * copy it freely. Shared by the metastore service, its C client and the
 * client runtime, so it lives here rather than in a service header.
 */
#ifndef QUIRE_CORE_SNAPSHOT_H
#define QUIRE_CORE_SNAPSHOT_H

#include <stdint.h>

#include "quire/ids.h"

struct quire_snapshot {
  quire_gid vid;              /* the volume (GID type 0x80) */
  quire_gid client_id;        /* the client that made the commit (0xC0) */
  quire_gid commit_id;        /* the commit id that client chose: the idempotency key (0xE0) */
  quire_lsn lsn;              /* the commit's LSN, >= 1 */
  quire_lsn checkpoint_lsn;   /* the latest checkpoint at or below lsn (0 = none) */
  quire_pagecount page_count; /* logical size of the volume in pages */
  uint64_t timestamp_ms;      /* metastore wall clock when the commit was written */
  uint32_t flags;             /* the commit record's flags (QUIRE_COMMIT_F_REWRITE) */
};

#endif
