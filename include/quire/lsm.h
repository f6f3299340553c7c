/*
 * quire/lsm.h — an embedded, transactional, ordered key-value store in one
 * file (DESIGN.md §5, file format in docs/LSM.md).
 *
 * Keys and values are byte strings. Keys compare with memcmp, the shorter
 * first on a tie; integers inside keys should be big-endian. Keys are 0 ..
 * lsm_max_key_len(db) bytes (about a quarter of a page); values 0 .. 2^32-1.
 *
 * Handles are opaque. Ownership is stated on every call: a handle returned
 * through an out parameter belongs to the caller and is released by the
 * matching close/abort/commit call. No global state: several databases may
 * be open in one process, each file at most once (a second open of the same
 * file, from this or another process, gets QUIRE_EBUSY).
 *
 * Threads: an lsm_db may be used from many threads at once. A single lsm_txn
 * or lsm_cursor must be used by one thread at a time. Readers never block
 * writers; commits are serialised.
 *
 * Errors: 0 on success, a negative QUIRE_E* code or -errno (quire/common.h);
 * detail in quire_errmsg(). Corruption is QUIRE_ECORRUPT, never a crash.
 */
#ifndef QUIRE_LSM_H
#define QUIRE_LSM_H

#include <stddef.h>
#include <stdint.h>

#include "quire/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsm_db lsm_db;
typedef struct lsm_txn lsm_txn;
typedef struct lsm_cursor lsm_cursor;
struct lsm_vfs; /* the file layer, quire/lsm_vfs.h */

/* Durability of a commit (docs/LSM.md, "Sync modes"). */
enum lsm_sync_mode {
  LSM_SYNC_FULL = 0,   /* an acknowledged commit survives power loss */
  LSM_SYNC_NORMAL = 1, /* survives a process crash; power loss may lose recent
                          commits but never corrupts the file */
  LSM_SYNC_OFF = 2,    /* no fsync and no log: a crash loses commits since the
                          last flush (tests, bulk loads); the file stays valid
                          after a process crash */
};

enum lsm_seek_op { LSM_SEEK_EQ = 0, LSM_SEEK_LE = 1, LSM_SEEK_GE = 2 };

/* Levels of the messages passed to lsm_options.log_fn. */
enum lsm_log_level {
  LSM_LOG_ERROR = 0, /* a write failed and the database stopped writing; a take-back failed */
  LSM_LOG_WARN = 1,  /* a background merge failed (it is retried); a free list was rebuilt */
  LSM_LOG_INFO = 2,  /* progress of long operations (vacuum) */
};

/* lsm_txn_begin flags */
#define LSM_TXN_OPTIMISTIC                                                                                   \
  1u /* commit fails with QUIRE_ECONFLICT if a commit that                                                   \
        wrote a key this transaction read or wrote (or any                                                   \
        range delete) landed after it began */

typedef struct lsm_options {
  /* Used only when the file is created. */
  uint32_t page_size;     /* power of two 4096..65536; 0 = 4096 */
  uint32_t reserve_bytes; /* extra trailing bytes per page kept free (0..1024) */
  uint32_t wal_pages;     /* size of the commit log region in pages; 0 = 8192 (32 MiB at 4 KiB) */
  int no_checksums;       /* 1 = do not verify page checksums (they are still written) */
  /* Used on every open. */
  int create;                /* create the file if it does not exist */
  int read_only;             /* never write the file: commits fail with QUIRE_EINVAL, recovery
                                happens in memory only, close writes nothing */
  int sync_mode;             /* enum lsm_sync_mode; default FULL */
  uint32_t block_pages;      /* allocation block size in pages; 0 = 256 */
  size_t cache_bytes;        /* page cache budget; 0 = 64 MiB */
  size_t txn_mem_bytes;      /* a transaction spills to disk past this; 0 = 8 MiB */
  size_t memtable_bytes;     /* committed data kept in memory before a flush; 0 = 32 MiB */
  unsigned max_incoming;     /* commits slow down (backpressure) while more than this many
                                segments wait in Incoming or in Waiting; 0 = 8 */
  const struct lsm_vfs *vfs; /* NULL = the POSIX file layer */
  /* Levels and merges (docs/LSM.md "Levels and merges"). */
  unsigned merge_threads;  /* background merge threads; 0 = 2 */
  int merge_inline;        /* 1: no threads; merges run on the committing thread after its commit
                              (deterministic: crash tests) */
  int merge_off;           /* 1: never merge on its own (lsm_compact still works) */
  unsigned level_factor;   /* nominal size growth between Regular levels; 0 = 10 */
  uint64_t level0_bytes;   /* nominal size of Regular 0; 0 = 64 MiB */
  uint32_t promote_leaves; /* leaves promoted by one partial merge; 0 = 512 */
  /* Where the library's own messages go; NULL: nowhere (the library never
   * writes to stderr or stdout). level is an enum lsm_log_level; msg is one
   * line without a newline, valid only during the call. Called from any
   * thread (background merges too), possibly with internal locks held: it
   * must not call into the database, and should be quick. log_ctx is passed
   * back untouched. Errors returned by calls are not logged (they carry
   * their own quire_errmsg()). */
  void (*log_fn)(void *ctx, int level, const char *msg);
  void *log_ctx;
} lsm_options;

/* Fills o with the defaults (every field 0 means "default"). */
QUIRE_API void lsm_options_init(lsm_options *o);

/* Opens (or with opts->create, creates) the database at path. opts may be
 * NULL (defaults, no create). On success *out belongs to the caller; release
 * with lsm_close. Errors: QUIRE_EBUSY (open elsewhere), QUIRE_ECORRUPT,
 * QUIRE_EVERSION (unknown format version), QUIRE_EINVAL (bad option),
 * -ENOENT (missing and not create), QUIRE_ENOMEM, QUIRE_EIO. After a crash,
 * open replays the commit log and rebuilds the free list if needed. */
QUIRE_API int lsm_open(const char *path, const lsm_options *opts, lsm_db **out);

/* Flushes committed data, writes both header slots and closes. Every
 * transaction and cursor must have been finished first. Accepts NULL.
 * Returns the first error met while flushing (the handle is freed anyway).
 * After a failed write (see lsm_txn_commit) it writes nothing and returns
 * QUIRE_EIO; reopening recovers the acknowledged commits from the log. */
QUIRE_API int lsm_close(lsm_db *db);

/* Longest key accepted (depends on the page size). */
QUIRE_API size_t lsm_max_key_len(const lsm_db *db);

/* A value returned by lsm_get / lsm_txn_get. data/len stay valid until
 * lsm_value_release(); the value holds a pin on a cached page or on the
 * in-memory table (or a private copy for values larger than a page). */
typedef struct lsm_value {
  const void *data;
  size_t len;
  void *pin_[3]; /* internal */
} lsm_value;

/* Releases what v pins; v becomes empty. Accepts an empty/zeroed value. */
QUIRE_API void lsm_value_release(lsm_value *v);

/* Latest committed value of key. QUIRE_ENOTFOUND if absent. On success the
 * caller must lsm_value_release(out). Inline values need no allocation. */
QUIRE_API int lsm_get(lsm_db *db, const void *key, size_t klen, lsm_value *out);

/* Point read of the nearest entry, on the latest snapshot, tombstones and
 * range deletes hidden: op LSM_SEEK_LE (the largest key <= key) or
 * LSM_SEEK_GE (the smallest key >= key); LSM_SEEK_EQ behaves like lsm_get.
 * The key found is copied into keybuf (keycap bytes, caller-owned; may be
 * NULL with keycap 0) and its length stored in *klen_out, also when keycap is
 * too small: then QUIRE_ETOOLARGE and *out stays empty (call again with
 * lsm_max_key_len(db) bytes). On success *out holds the value as lsm_get's
 * does (release it with lsm_value_release). QUIRE_ENOTFOUND when nothing
 * qualifies. No cursor is built: for the client's pages, keys
 * {'P'}{16-byte volume id}{page index BE32}{lsn BE64} and "the newest version
 * at or below lsn" is a seek LE to {'P'}{vid}{idx}{lsn} followed by a check
 * of the first 21 bytes of the key found. */
QUIRE_API int lsm_get_seek(lsm_db *db, const void *key, size_t klen, int op, void *keybuf, size_t keycap,
                           size_t *klen_out, lsm_value *out);

/* Starts a transaction on a snapshot of the latest commit. *out belongs to
 * the caller until lsm_txn_commit or lsm_txn_abort. flags: LSM_TXN_*. */
QUIRE_API int lsm_txn_begin(lsm_db *db, unsigned flags, lsm_txn **out);
/* Buffered writes (copied). QUIRE_ETOOLARGE for an over-long key. A large
 * transaction spills to pending segments on disk past txn_mem_bytes. */
QUIRE_API int lsm_txn_put(lsm_txn *t, const void *k, size_t kl, const void *v, size_t vl);
QUIRE_API int lsm_txn_delete(lsm_txn *t, const void *k, size_t kl);
/* Deletes every key in [lo, hi) with one range tombstone. lo >= hi is a no-op. */
QUIRE_API int lsm_txn_delete_range(lsm_txn *t, const void *lo, size_t lol, const void *hi, size_t hil);
/* Reads key as this transaction sees it (its own writes over its snapshot).
 * QUIRE_ENOTFOUND if absent; release *out with lsm_value_release. */
QUIRE_API int lsm_txn_get(lsm_txn *t, const void *k, size_t kl, lsm_value *out);
/* lsm_get_seek as transaction t sees the data (its own writes over its
 * snapshot). An optimistic transaction records the key found as read (not
 * the gap before it). */
QUIRE_API int lsm_txn_get_seek(lsm_txn *t, const void *key, size_t klen, int op, void *keybuf, size_t keycap,
                               size_t *klen_out, lsm_value *out);
/* This commit's durability, overriding the database's sync_mode:
 * LSM_SYNC_FULL (acknowledged once the log is synced: survives power loss)
 * or LSM_SYNC_NORMAL (acknowledged once written: survives a process crash).
 * Commits stay ordered whatever their modes: the log is one sequence, so a
 * FULL commit's sync makes every earlier NORMAL commit durable too, replay
 * never keeps a later commit without the earlier ones, and a NORMAL commit
 * made while an earlier FULL one waits for its sync is acknowledged (and
 * visible) only once that FULL one is durable. QUIRE_EINVAL for
 * LSM_SYNC_OFF (a commit without a log record could be lost while later
 * ones survive) and on a database opened with LSM_SYNC_OFF (it keeps no
 * log). Call any time before lsm_txn_commit. */
QUIRE_API int lsm_txn_set_sync(lsm_txn *t, int sync_mode);
/* Commits and frees t (always, even on failure). Durable per the sync mode
 * when it returns 0. QUIRE_ECONFLICT for an optimistic transaction that lost.
 * A commit that fails never takes effect, now or after a reopen. If a write
 * or sync of the file fails (here, in a flush or in a background merge), the
 * database refuses every later commit, flush, compaction and merge with
 * QUIRE_EIO until it is closed and reopened (reads still work). */
QUIRE_API int lsm_txn_commit(lsm_txn *t);
/* Discards t and frees it. Accepts NULL. */
QUIRE_API void lsm_txn_abort(lsm_txn *t);

/* A cursor over a pinned snapshot of the latest commit (tombstones hidden).
 * Pages reachable from the snapshot are not reused until it closes. *out
 * belongs to the caller; close with lsm_cursor_close. A new cursor is not
 * positioned. */
QUIRE_API int lsm_cursor_open(lsm_db *db, lsm_cursor **out);
/* A cursor over what transaction t sees (its writes over its snapshot). Must
 * be closed before t commits or aborts. */
QUIRE_API int lsm_txn_cursor_open(lsm_txn *t, lsm_cursor **out);
/* Moves. Return 0 when positioned on an entry, QUIRE_EEND when there is none
 * (the cursor is then invalid), or an error. */
QUIRE_API int lsm_cursor_first(lsm_cursor *c);
QUIRE_API int lsm_cursor_last(lsm_cursor *c);
QUIRE_API int lsm_cursor_next(lsm_cursor *c);
QUIRE_API int lsm_cursor_prev(lsm_cursor *c);
/* op: LSM_SEEK_EQ (exact), LE (largest key <= k), GE (smallest key >= k).
 * 0 when positioned, QUIRE_ENOTFOUND when nothing qualifies. */
QUIRE_API int lsm_cursor_seek(lsm_cursor *c, const void *k, size_t kl, int op);
QUIRE_API int lsm_cursor_valid(const lsm_cursor *c);
/* Key of the current entry; the pointer is valid until the cursor moves or
 * closes. QUIRE_EINVAL if the cursor is not valid. */
QUIRE_API int lsm_cursor_key(lsm_cursor *c, const void **k, size_t *kl);
/* Whole value of the current entry, valid until the cursor moves or closes
 * (values stored on overflow pages are read into a cursor-owned buffer). */
QUIRE_API int lsm_cursor_value(lsm_cursor *c, const void **v, size_t *vl);
/* Length of the current value without reading it. */
QUIRE_API int lsm_cursor_value_len(lsm_cursor *c, uint64_t *len);
/* Copies value bytes [off, off+n) into buf (fewer at the end of the value)
 * without reading the rest of a large value; *got = bytes copied. */
QUIRE_API int lsm_cursor_value_read(lsm_cursor *c, uint64_t off, void *buf, size_t n, size_t *got);
/* Releases the snapshot and frees c. Accepts NULL. */
QUIRE_API void lsm_cursor_close(lsm_cursor *c);

/* Writes the in-memory table into a segment and checkpoints the header. */
QUIRE_API int lsm_flush(lsm_db *db);
/* Flushes, then merges every segment into one in the last level, dropping
 * tombstones and range tombstones. Pauses background merges meanwhile. */
QUIRE_API int lsm_compact(lsm_db *db);
/* Writes the live data of the latest commit into a fresh file at dst_path
 * (which must not exist, or be empty): one segment, no free pages, same page
 * size. The source stays open and usable. */
QUIRE_API int lsm_vacuum(lsm_db *db, const char *dst_path);
/* Waits until no merge is running and none is needed (tests, benchmarks). Returns the
 * last background merge error, if any. */
QUIRE_API int lsm_merge_wait(lsm_db *db);

#define LSM_STATS_LEVELS 18 /* Incoming, Waiting, Regular 0..15 */
typedef struct lsm_level_stats {
  char name[16];                       /* "incoming", "waiting", "regular 0", ... */
  uint32_t segments;                   /* segments in the level (Regular: 0 or 1) */
  uint32_t depth;                      /* deepest segment tree (0 = a single leaf) */
  uint64_t leaves, tombstones, ranges; /* leaf pages, point tombstones, range tombstones */
  uint64_t bytes;                      /* leaves x page size */
  uint64_t nominal_bytes;              /* Regular: the size past which it merges down; else 0 */
} lsm_level_stats;

typedef struct lsm_stats {
  uint32_t page_size, reserve_bytes;
  uint64_t pages_total;    /* file end in pages */
  uint64_t pages_free;     /* in the free list (reusable now or after readers finish) */
  uint32_t wal_pages;      /* log region */
  uint64_t wal_bytes_used; /* log bytes since the last flush */
  uint64_t generation, change_counter, merge_counter;
  uint32_t incoming, waiting, regular; /* segments per level group */
  uint64_t mem_bytes, mem_entries;     /* in-memory table */
  uint64_t commits, flushes, merges, log_syncs, header_writes;
  uint64_t cache_hits, cache_misses, cache_bytes;
  uint64_t conflicts;
  /* levels: [0] Incoming, [1] Waiting, [2 + n] Regular n; nlevels used */
  uint32_t nlevels;
  lsm_level_stats level[LSM_STATS_LEVELS];
  uint64_t merges_moved;        /* segments moved down without rewriting */
  uint64_t merges_full;         /* whole-segment merges (Incoming runs, compact) */
  uint64_t merges_partial;      /* partial merges (a window of leaves promoted) */
  uint64_t merge_pages_written; /* pages written by merges */
  uint64_t merge_recycled;      /* subtrees kept by reference by partial merges */
  uint64_t tombstones_dropped;  /* point tombstones that disappeared in merges */
  uint64_t merge_errors;        /* background merges that failed (retried later) */
  uint64_t stalls, stall_us;    /* commits slowed down by backpressure, and for how long */
  uint64_t bytes_written;       /* bytes written to the file since open (log, pages, headers) */
  uint64_t pages_limbo;         /* freed pages waiting for old snapshots to close */
  uint32_t format_version;      /* of the file (1) */
  int checksums_verified;       /* 0 if the file was created with no_checksums */
  uint32_t wal_start;           /* first page of the log region */
  uint64_t wal_epoch;           /* log epoch of the latest header */
  uint64_t merges_batched; /* partial merges from Waiting that took newer segments along (a pass's batch) */
} lsm_stats;

/* Fills *out (caller-owned) with counters of the open database. */
QUIRE_API int lsm_stats_get(lsm_db *db, lsm_stats *out);

/* One segment of the latest version, for `quire lsm stat`. */
typedef struct lsm_segment_stats {
  uint32_t level; /* index into lsm_stats.level: 0 Incoming, 1 Waiting, 2 + n Regular n */
  uint32_t pos;   /* position in its level (Incoming, Waiting: 0 = newest) */
  uint32_t root;  /* root page; 0 for an empty Regular level */
  uint32_t depth; /* 0: the root is a leaf */
  uint64_t leaves, tombstones, ranges; /* leaf pages, point tombstones, range tombstones */
} lsm_segment_stats;

/* Copies up to cap segment descriptions, newest level first, into out
 * (caller-owned); *n = how many there are (may exceed cap: call again with
 * more room). Empty Regular levels are listed with root 0. */
QUIRE_API int lsm_stats_segments(lsm_db *db, lsm_segment_stats *out, size_t cap, size_t *n);

/* Page accounting of lsm_check: every page of the file is exactly one of
 * header, log, reachable from a segment, or free. */
typedef struct lsm_check_result {
  uint64_t pages_total;    /* pages counted (header, log, segments, free, leaked) */
  uint64_t pages_header;   /* 1 */
  uint64_t pages_log;      /* the commit log region */
  uint64_t pages_segments; /* reachable from a segment of the latest header */
  uint64_t pages_free;     /* on the free list, freed by the next header, in limbo, or the saved list's own */
  uint64_t pages_limbo;    /* of pages_free: freed by merges, waiting for older snapshots to close */
  uint64_t pages_leaked;   /* none of these: unusable until the next free-list rebuild (not corruption) */
  uint64_t pages_double;   /* free twice, or both free and in use (corruption) */
  int error;               /* what lsm_check returned */
  char message[256];       /* the first problem found, "" if none */
} lsm_check_result;

/* Walks every segment of the database as it is durable: verifies every page
 * checksum, key order within and across pages, parent keys and counts,
 * overflow runs, range tombstones and the free list, and accounts for every
 * page (*out, caller-owned, always filled). Returns 0 when the file is sound
 * (leaked pages are counted, not an error), QUIRE_ECORRUPT when anything is
 * corrupt (each problem is also passed to lsm_options.log_fn at
 * LSM_LOG_ERROR), QUIRE_ENOMEM. Pauses background merges while it counts;
 * reads go on. */
QUIRE_API int lsm_check(lsm_db *db, lsm_check_result *out);

#ifdef __cplusplus
}
#endif
#endif
