/*
 * objstore/objstore_int.h — what the object-store backends share.
 *
 * A quire_objstore is a generic shell (URL, counters, retry and hedging
 * policy) around a backend: a table of operations plus its private state.
 * objstore.c parses URLs, validates keys once for every backend, counts
 * calls, and runs each call through the retry/hedge policy; a backend only
 * performs single attempts. Backends: objstore_mem.c, objstore_file.c,
 * objstore_fault.c, objstore_s3.c.
 */
#ifndef QUIRE_OBJSTORE_INT_H
#define QUIRE_OBJSTORE_INT_H

#include "quire/objstore.h"
#include "util/cancel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Query parameters of a store URL. Each consumer marks what it used; an
 * unused parameter left over after opening is QUIRE_EINVAL. */
#define OBJSTORE_MAX_PARAMS 32
struct objstore_params {
  size_t n;
  char *key[OBJSTORE_MAX_PARAMS];
  char *val[OBJSTORE_MAX_PARAMS];
  uint8_t used[OBJSTORE_MAX_PARAMS];
};

/* The value of parameter name (marking it used), or NULL if absent. */
const char *objstore__param(struct objstore_params *p, const char *name);
/* Parses parameter name as an unsigned integer (default dflt when absent).
 * QUIRE_EINVAL for a malformed value. */
int objstore__param_u64(struct objstore_params *p, const char *name, uint64_t dflt, uint64_t *out);
/* Parses a probability in [0, 1]. */
int objstore__param_prob(struct objstore_params *p, const char *name, double *out);

/* A backend's private writer. */
struct objstore_wimpl;
struct objstore_writer_ops {
  int (*write)(struct objstore_wimpl *w, const void *data, size_t len);
  /* Publishes the object and frees w whatever the result. */
  int (*commit)(struct objstore_wimpl *w);
  void (*abort)(struct objstore_wimpl *w);
};

struct objstore_ops {
  const char *scheme;
  /* One attempt each; keys are already validated. flags: QUIRE_OBJSTORE_IF_ABSENT. */
  int (*put)(quire_objstore *s, const char *key, const void *data, size_t len, int flags);
  int (*get)(quire_objstore *s, const char *key, uint8_t **data, size_t *len);
  int (*get_range)(quire_objstore *s, const char *key, uint64_t off, size_t len, void *buf, size_t *got);
  int (*head)(quire_objstore *s, const char *key, quire_objstore_info *info);
  /* Fills out (zeroed by the caller); limit is already normalised. */
  int (*list)(quire_objstore *s, const char *prefix, const char *start_after, size_t limit,
              quire_objstore_list *out);
  /* *found (set to -1 by the caller): 1 when the attempt removed the key, 0
   * when it was absent; left at -1 when the backend cannot tell. */
  int (*del)(quire_objstore *s, const char *key, int *found);
  /* Optional: NULL means "buffer in memory, then put". */
  int (*writer_open)(quire_objstore *s, const char *key, int flags, struct objstore_wimpl **out,
                     const struct objstore_writer_ops **ops);
  void (*close)(quire_objstore *s);
};

struct quire_objstore {
  const struct objstore_ops *ops;
  void *impl; /* backend state */
  char *url;
  /* policy */
  unsigned retries;
  uint64_t backoff_ms, deadline_ms, hedge_ms;
  /* counters (relaxed atomics) */
  _Atomic uint64_t calls[QUIRE_OBJSTORE_OP_COUNT_];
  _Atomic uint64_t attempts[QUIRE_OBJSTORE_OP_COUNT_];
  _Atomic uint64_t retried, hedges, hedge_wins;
  _Atomic uint64_t inj_errors, inj_lost_acks, inj_latency;
  /* Hedge threads still running (close waits for them). mu protects it. */
  pthread_mutex_t mu;
  pthread_cond_t hedges_done;
  unsigned hedges_running;
  uint64_t rng; /* jitter; under mu */
};

/* Backend constructors: set s->ops and s->impl, consuming their parameters.
 * location is the part of the URL between "scheme://" and "?". */
int objstore__mem_open(quire_objstore *s, const char *location, struct objstore_params *p);
int objstore__file_open(quire_objstore *s, const char *location, struct objstore_params *p);
int objstore__s3_open(quire_objstore *s, const char *location, struct objstore_params *p);
/* inner_url is the wrapped store's URL (already stripped of fault options). */
int objstore__fault_open(quire_objstore *s, const char *inner_url, struct objstore_params *p);

/* Opens a store without the outer retry/hedge policy (for wrapped stores). */
int objstore__open_inner(const char *url, quire_objstore **out);

/* Cancellation of the current attempt (hedging): backends that block for a
 * long time watch this token (NULL when the attempt cannot be cancelled)
 * and give up with QUIRE_ECANCELED when it fires. */
quire_cancel *objstore__cancel_token(void);
int objstore__cancelled(void); /* quire__cancel_fired(objstore__cancel_token()) */
/* Absolute CLOCK_MONOTONIC deadline (ns) of the current call, 0 if none. */
uint64_t objstore__deadline_ns(void);
/* A backend's hint that the server asked to wait ms before the next attempt
 * (S3 Retry-After on 503/429); the retry loop waits at least that long,
 * within the deadline. Reset before every attempt. */
void objstore__retry_after(unsigned ms);

/* 1 for failures worth retrying (QUIRE_EUNAVAILABLE, QUIRE_ETIMEDOUT). */
int objstore__retryable(int rc);
/* Runs attempt(ctx) under s's retry policy for op; counts attempts. */
int objstore__with_retries(quire_objstore *s, int op, int (*attempt)(void *ctx), void *ctx);

/* Parses one ListObjectsV2 response page (objstore_s3.c; fuzzed): appends
 * keys below store_prefix (stripped) that are valid quire keys, in
 * strictly ascending order after start_after (QUIRE_EIO otherwise), at most
 * limit in all (then sets out->truncated). *truncated and *token (caller
 * frees) come from IsTruncated / NextContinuationToken. */
int objstore__s3_parse_list(const char *body, size_t len, const char *store_prefix, const char *start_after,
                            size_t limit, quire_objstore_list *out, int *truncated, char **token);

/* write(2) until done (EINTR retried); -errno on failure. */
int objstore__write_all(int fd, const void *data, size_t len);

/* Adds one entry to a list result (key copied). */
int objstore__list_push(quire_objstore_list *out, const char *key, uint64_t size);

#endif
