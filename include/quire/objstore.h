/*
 * quire/objstore.h — object storage: one interface, several backends chosen
 * by URL (DESIGN.md §7.2).
 *
 *   file:///abs/dir[?fsync=0]      the embedded default: one file per key
 *   mem://[name]                   in-process, for tests (each open is fresh)
 *   s3://bucket[/prefix]?endpoint=http://127.0.0.1:PORT&region=us-east-1
 *                                  S3 REST with SigV4 (libcurl)
 *   fault+<url>?seed=N&err=P&latency=MS&lost_ack=P
 *                                  wraps any store and injects faults
 *
 * Options every URL accepts (query parameters, consumed by the outermost
 * store): retries=N (default 4 for s3, 0 otherwise), backoff_ms=MS (base of
 * the jittered exponential backoff, default 20), deadline_ms=MS (bound on one
 * call including its retries, default 30000), hedge_ms=MS (0 = off; the
 * default for s3 is 0 too: a GET that has not answered after MS gets a second,
 * identical request; the first complete answer wins and the other is
 * cancelled). Retries apply to QUIRE_EUNAVAILABLE and QUIRE_ETIMEDOUT only
 * (S3: 5xx, 429, connection failures and timeouts).
 *
 * Keys. Every backend validates keys the same way (quire_objstore_key_check):
 * 1..1024 bytes of [A-Za-z0-9._-/], no leading or trailing '/', no empty
 * component ("a//b"), and no component starting with '.' (so no "." or "..",
 * and names like ".tmp-x" are free for backends' temporary files). Anything
 * else is QUIRE_EINVAL. quire uses `segments/{segment id}` and
 * `volumes/{volume id}/log/{lsn as 16 hex digits}`.
 *
 * Semantics:
 *   put            atomic replace: a reader sees the old or the new bytes,
 *                  never a mix; durable when it returns (file: fsync'd).
 *   put_if_absent  create only; QUIRE_EEXIST if the key exists. Racing
 *                  creators (threads or processes) get exactly one winner on
 *                  stores that honour it (see quire_objstore_probe).
 *   get, get_range QUIRE_ENOTFOUND for a missing key.
 *   delete         removing a missing key succeeds (S3 semantics).
 *   list           keys in byte order.
 * With retries, a write whose acknowledgement was lost is retried: a retried
 * put_if_absent may then report QUIRE_EEXIST for its own write. Callers that
 * need exactness re-read the object (the metastore compares commit ids).
 *
 * Thread safety: a quire_objstore handle may be used from any number of
 * threads at once. A writer or list result belongs to one thread at a time.
 * Every call records a detail for failures in quire_errmsg().
 */
#ifndef QUIRE_OBJSTORE_H
#define QUIRE_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "quire/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct quire_objstore quire_objstore;
typedef struct quire_objstore_writer quire_objstore_writer;
typedef struct quire_objstore_uploads quire_objstore_uploads;

#define QUIRE_OBJSTORE_KEY_MAX 1024
#define QUIRE_OBJSTORE_ETAG_MAX 64

/* Opens the store named by url (see above). *out is owned by the caller and
 * released with quire_objstore_close. QUIRE_EINVAL for a malformed URL or an
 * unknown option, QUIRE_EUNSUPPORTED for an unknown scheme, -errno when a
 * file:// directory cannot be created or opened. Opening does no network
 * I/O; use quire_objstore_probe to check an endpoint. */
QUIRE_API int quire_objstore_open(const char *url, quire_objstore **out);
/* Releases the handle. Every writer and upload pool on it must be finished.
 * Accepts NULL. */
QUIRE_API void quire_objstore_close(quire_objstore *s);
/* The URL the store was opened with (owned by s). */
QUIRE_API const char *quire_objstore_url(const quire_objstore *s);

/* 0 if key is valid (see "Keys" above), QUIRE_EINVAL otherwise. */
QUIRE_API int quire_objstore_key_check(const char *key);

/* Stores len bytes at key, replacing any previous object atomically. */
QUIRE_API int quire_objstore_put(quire_objstore *s, const char *key, const void *data, size_t len);
/* Stores len bytes at key only if key does not exist: QUIRE_EEXIST if it
 * does (the existing object is untouched). */
QUIRE_API int quire_objstore_put_if_absent(quire_objstore *s, const char *key, const void *data, size_t len);

/* Reads the whole object. On success *data is a new buffer of *len bytes
 * (never NULL, even for an empty object) that the caller releases with
 * quire_objstore_free. QUIRE_ENOTFOUND if key is absent. */
QUIRE_API int quire_objstore_get(quire_objstore *s, const char *key, uint8_t **data, size_t *len);
/* Releases a buffer returned by quire_objstore_get. Accepts NULL. */
QUIRE_API void quire_objstore_free(void *p);

/* Reads bytes [off, off+len) of the object into buf (room for len bytes).
 * *got is set to the number of bytes read: len, or fewer when the object
 * ends first. off == size (or len == 0) reads nothing and succeeds;
 * off > size is QUIRE_ERANGE. QUIRE_ENOTFOUND if key is absent. */
QUIRE_API int quire_objstore_get_range(quire_objstore *s, const char *key, uint64_t off, size_t len,
                                       void *buf, size_t *got);

typedef struct quire_objstore_info {
  uint64_t size;
  /* Opaque version tag, NUL-terminated; changes when the object is
   * replaced (S3: the ETag without quotes; file: inode, size and mtime). */
  char etag[QUIRE_OBJSTORE_ETAG_MAX + 1];
} quire_objstore_info;

/* Size and etag of key. QUIRE_ENOTFOUND if absent. */
QUIRE_API int quire_objstore_head(quire_objstore *s, const char *key, quire_objstore_info *info);

/* Removes key. Succeeds if key is already absent. */
QUIRE_API int quire_objstore_delete(quire_objstore *s, const char *key);
/* quire_objstore_delete that also says, on success, whether this call
 * removed the object: *found is 1 when it did, 0 when the key was already
 * absent (another deleter got there first), -1 when the backend cannot tell
 * (s3: DeleteObject answers 204 either way). file:// and mem:// always
 * tell, exactly: of racing deleters of one key, one gets 1. A retried
 * attempt after a lost acknowledgement sees 0 for its own deletion. */
QUIRE_API int quire_objstore_delete_found(quire_objstore *s, const char *key, int *found);

typedef struct quire_objstore_entry {
  char *key; /* NUL-terminated, owned by the list */
  uint64_t size;
} quire_objstore_entry;

typedef struct quire_objstore_list {
  quire_objstore_entry *entries; /* ascending byte order */
  size_t count;
  /* 1 when more keys match: call again with start_after = the last key. */
  int truncated;
} quire_objstore_list;

/* Keys that start with prefix ("" = all) and sort strictly after
 * start_after (NULL or "" = from the start), at most limit of them (1 ..
 * 10000; 0 means 1000). The prefix is any string of key characters (it need
 * not end at a '/'). On success *out holds the entries; release them with
 * quire_objstore_list_free (also on failure, which leaves *out empty). */
QUIRE_API int quire_objstore_list_keys(quire_objstore *s, const char *prefix, const char *start_after,
                                       size_t limit, quire_objstore_list *out);
QUIRE_API void quire_objstore_list_free(quire_objstore_list *list);

/* Streaming put: open a writer, write the bytes in pieces, then commit (which
 * publishes the object atomically: nothing is visible under key before, and
 * the whole object is after) or abort. Both commit and abort free the
 * writer, whatever they return. Backends never hold two copies of the
 * object: file:// writes into an unnamed file in the key's directory, s3://
 * spools to an unlinked temporary file (QUIRE_TMPDIR, TMPDIR or /tmp) and
 * uploads it from there, mem:// builds the object in place.
 * flags: 0 (replace) or QUIRE_OBJSTORE_IF_ABSENT (commit returns
 * QUIRE_EEXIST if the key exists by then). */
#define QUIRE_OBJSTORE_IF_ABSENT 1
QUIRE_API int quire_objstore_writer_open(quire_objstore *s, const char *key, int flags,
                                         quire_objstore_writer **out);
QUIRE_API int quire_objstore_writer_write(quire_objstore_writer *w, const void *data, size_t len);
/* Bytes written so far. */
QUIRE_API uint64_t quire_objstore_writer_size(const quire_objstore_writer *w);
QUIRE_API int quire_objstore_writer_commit(quire_objstore_writer *w);
/* Accepts NULL. */
QUIRE_API void quire_objstore_writer_abort(quire_objstore_writer *w);

/* Checks whether the store really honours put_if_absent: writes a probe key
 * (`.probe` is not a valid user key, so it uses `quire-probe/{random}`)
 * twice with put_if_absent and deletes it. *conditional is 1 if the second
 * write was refused with QUIRE_EEXIST, 0 if it was accepted. Returns an
 * error only if the store could not be reached or written. */
QUIRE_API int quire_objstore_probe(quire_objstore *s, int *conditional);

/* Operations counted by quire_objstore_stats. */
enum quire_objstore_op {
  QUIRE_OBJSTORE_OP_PUT = 0,
  QUIRE_OBJSTORE_OP_PUT_IF_ABSENT,
  QUIRE_OBJSTORE_OP_GET,
  QUIRE_OBJSTORE_OP_GET_RANGE,
  QUIRE_OBJSTORE_OP_HEAD,
  QUIRE_OBJSTORE_OP_LIST,
  QUIRE_OBJSTORE_OP_DELETE,
  QUIRE_OBJSTORE_OP_WRITER, /* writer commits */
  QUIRE_OBJSTORE_OP_COUNT_
};

typedef struct quire_objstore_stats {
  /* Calls made on this handle, per operation. */
  uint64_t calls[QUIRE_OBJSTORE_OP_COUNT_];
  /* Attempts made by those calls against the backend: calls + retries +
   * hedges. For s3:// one attempt is one HTTP request (a list call may
   * need several pages; each page is an attempt). */
  uint64_t attempts[QUIRE_OBJSTORE_OP_COUNT_];
  uint64_t retries;    /* attempts repeated after a retryable failure */
  uint64_t hedges;     /* second requests started by hedging */
  uint64_t hedge_wins; /* calls answered by the hedge, not the first request */
  /* fault+ stores only: faults injected, per kind. */
  uint64_t injected_errors, injected_lost_acks, injected_latency;
} quire_objstore_stats;

/* A snapshot of the counters of s (monotonic since open, never reset). */
QUIRE_API void quire_objstore_stats_get(const quire_objstore *s, quire_objstore_stats *out);
/* For fault+ stores: the wrapped store (owned by s), else NULL. Lets tests
 * read the inner store's counters and contents. */
QUIRE_API quire_objstore *quire_objstore_fault_inner(quire_objstore *s);

/* Upload pool: runs puts on up to `concurrency` threads, with at most
 * `queue` more waiting; quire_objstore_uploads_put blocks while the pool is
 * full (backpressure). The data must stay valid and unchanged until done is
 * called (on a pool thread) with the put's result. */
typedef void (*quire_objstore_done_fn)(void *arg, int rc);
QUIRE_API int quire_objstore_uploads_create(quire_objstore *s, unsigned concurrency, size_t queue,
                                            quire_objstore_uploads **out);
/* flags: 0 or QUIRE_OBJSTORE_IF_ABSENT. The key is copied. */
QUIRE_API int quire_objstore_uploads_put(quire_objstore_uploads *u, const char *key, const void *data,
                                         size_t len, int flags, quire_objstore_done_fn done, void *arg);
/* Waits until every submitted put has finished and its done has returned. */
QUIRE_API void quire_objstore_uploads_wait(quire_objstore_uploads *u);
/* Waits like uploads_wait, then frees u. Accepts NULL. */
QUIRE_API void quire_objstore_uploads_destroy(quire_objstore_uploads *u);

#ifdef __cplusplus
}
#endif
#endif
