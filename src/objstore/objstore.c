/*
 * objstore/objstore.c — the generic object-store shell: URL parsing, the one
 * key validator, per-operation counters, retries with jittered exponential
 * backoff under a deadline, hedged GETs, the in-memory fallback writer and
 * the upload pool. Backends (objstore_{mem,file,s3,fault}.c) perform single
 * attempts; see objstore_int.h.
 *
 * Hedging. A hedged GET runs its first attempt on the calling thread and
 * starts a helper thread that waits hedge_ms; if the first attempt has not
 * finished by then the helper makes a second, identical attempt into its own
 * buffer. Whichever finishes first with a complete answer (success or a
 * non-retryable error) wins; the other attempt's cancel token fires
 * (backends watch objstore__cancel_token(): s3:// transfers are woken at
 * once, fault+ latency sleeps end) and its result is dropped. The
 * shared `struct race` is reference counted (caller + helper) so neither
 * waits for the loser. The store counts running helpers and close() waits
 * for them, so a helper never outlives its store.
 */
#include "objstore/objstore_int.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- keys ----------------------------------------------------------------- */

static int key_char_ok(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '/';
}

int quire_objstore_key_check(const char *key) {
  if (!key) return quire__err(QUIRE_EINVAL, "key is NULL");
  size_t n = strnlen(key, QUIRE_OBJSTORE_KEY_MAX + 1);
  if (n == 0) return quire__err(QUIRE_EINVAL, "empty key");
  if (n > QUIRE_OBJSTORE_KEY_MAX)
    return quire__err(QUIRE_EINVAL, "key longer than %d bytes", QUIRE_OBJSTORE_KEY_MAX);
  int comp_start = 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)key[i];
    if (!key_char_ok(c)) return quire__err(QUIRE_EINVAL, "key has a forbidden byte 0x%02x at %zu", c, i);
    if (c == '/' && comp_start) return quire__err(QUIRE_EINVAL, "key has an empty component at %zu", i);
    if (c == '.' && comp_start) return quire__err(QUIRE_EINVAL, "key component starts with '.' at %zu", i);
    comp_start = c == '/';
  }
  if (comp_start) return quire__err(QUIRE_EINVAL, "key ends with '/'");
  return 0;
}

/* A list prefix (or start_after): key characters, no empty component, no
 * component starting with '.'; may be empty or end with '/'. */
static int prefix_check(const char *prefix) {
  size_t n = strnlen(prefix, QUIRE_OBJSTORE_KEY_MAX + 1);
  if (n > QUIRE_OBJSTORE_KEY_MAX) return quire__err(QUIRE_EINVAL, "prefix too long");
  for (size_t i = 0; i < n; i++)
    if (!key_char_ok((unsigned char)prefix[i]))
      return quire__err(QUIRE_EINVAL, "prefix has a forbidden byte 0x%02x", (unsigned char)prefix[i]);
  int comp_start = 1;
  for (size_t i = 0; i < n; i++) {
    if (comp_start && (prefix[i] == '/' || prefix[i] == '.'))
      return quire__err(QUIRE_EINVAL, "prefix has an empty component or one starting with '.'");
    comp_start = prefix[i] == '/';
  }
  return 0;
}

/* ---- URL parameters ------------------------------------------------------- */

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s in place. */
static int pct_decode(char *s) {
  char *w = s;
  for (char *r = s; *r; r++) {
    if (*r == '%') {
      int h = hexval(r[1]), l = h < 0 ? -1 : hexval(r[2]);
      if (h < 0 || l < 0 || (h == 0 && l == 0)) return quire__err(QUIRE_EINVAL, "bad %%-escape in URL");
      *w++ = (char)(h * 16 + l);
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = 0;
  return 0;
}

static void params_free(struct objstore_params *p) {
  for (size_t i = 0; i < p->n; i++) quire__free(p->key[i]);
  p->n = 0;
}

/* Parses "k=v&k2=v2" (a copy is made per pair). */
static int params_parse(const char *query, struct objstore_params *p) {
  memset(p, 0, sizeof *p);
  const char *q = query;
  while (q && *q) {
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    if (len) {
      if (p->n == OBJSTORE_MAX_PARAMS) return quire__err(QUIRE_EINVAL, "too many URL parameters");
      char *kv = quire__malloc(len + 1);
      if (!kv) return QUIRE_ENOMEM;
      memcpy(kv, q, len);
      kv[len] = 0;
      char *eq = strchr(kv, '=');
      p->key[p->n] = kv;
      p->val[p->n] = eq ? eq + 1 : kv + len;
      if (eq) *eq = 0;
      p->n++;
      int rc = pct_decode(kv);
      if (!rc && eq) rc = pct_decode(eq + 1);
      if (rc) return rc;
    }
    q = amp ? amp + 1 : NULL;
  }
  return 0;
}

const char *objstore__param(struct objstore_params *p, const char *name) {
  const char *v = NULL;
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->key[i], name) == 0) {
      p->used[i] = 1;
      v = p->val[i]; /* the last occurrence wins */
    }
  return v;
}

int objstore__param_u64(struct objstore_params *p, const char *name, uint64_t dflt, uint64_t *out) {
  const char *v = objstore__param(p, name);
  if (!v) {
    *out = dflt;
    return 0;
  }
  if (!*v || *v < '0' || *v > '9')
    return quire__err(QUIRE_EINVAL, "URL parameter %s='%s' is not a number", name, v);
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || *end) return quire__err(QUIRE_EINVAL, "URL parameter %s='%s' is not a number", name, v);
  *out = x;
  return 0;
}

int objstore__param_prob(struct objstore_params *p, const char *name, double *out) {
  const char *v = objstore__param(p, name);
  *out = 0;
  if (!v) return 0;
  char *end;
  double x = strtod(v, &end);
  if (!*v || *end || !(x >= 0 && x <= 1))
    return quire__err(QUIRE_EINVAL, "URL parameter %s='%s' is not a probability in [0,1]", name, v);
  *out = x;
  return 0;
}

/* ---- open / close --------------------------------------------------------- */

static int store_alloc(const char *url, quire_objstore **out) {
  quire_objstore *s = quire__calloc(1, sizeof *s);
  if (!s) return QUIRE_ENOMEM;
  s->url = quire__strdup(url);
  if (!s->url) {
    quire__free(s);
    return QUIRE_ENOMEM;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->hedges_done, NULL);
  s->rng = quire__mono_ns() ^ (uint64_t)(uintptr_t)s;
  s->backoff_ms = 20;
  s->deadline_ms = 30000;
  *out = s;
  return 0;
}

static void store_free(quire_objstore *s) {
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->hedges_done);
  quire__free(s->url);
  quire__free(s);
}

/* Rebuilds "base?k=v&..." from the parameters nobody has used yet, marking
 * them used (they belong to the wrapped store). */
static int rebuild_inner_url(const char *base, size_t base_len, struct objstore_params *p, char **out) {
  quire_buf b;
  quire__buf_init(&b, 64 * 1024);
  int rc = quire__buf_append(&b, base, base_len);
  char sep = '?';
  for (size_t i = 0; !rc && i < p->n; i++) {
    if (p->used[i]) continue;
    p->used[i] = 1;
    rc = quire__buf_append(&b, &sep, 1);
    if (!rc) rc = quire__buf_append(&b, p->key[i], strlen(p->key[i]));
    if (!rc) rc = quire__buf_append(&b, "=", 1);
    /* Values are re-escaped conservatively: only unreserved bytes pass. */
    for (const char *v = p->val[i]; !rc && *v; v++) {
      unsigned char c = (unsigned char)*v;
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.~:/", c)) {
        rc = quire__buf_append(&b, v, 1);
      } else {
        char esc[4];
        snprintf(esc, sizeof esc, "%%%02X", c);
        rc = quire__buf_append(&b, esc, 3);
      }
    }
    sep = '&';
  }
  if (!rc) rc = quire__buf_append(&b, "", 1);
  if (rc) {
    quire__buf_free(&b);
    return rc;
  }
  size_t len;
  *out = (char *)quire__buf_detach(&b, &len);
  return 0;
}

static int open_url(const char *url, int outer, quire_objstore **out) {
  *out = NULL;
  if (!url) return quire__err(QUIRE_EINVAL, "store URL is NULL");
  quire_objstore *s = NULL;
  struct objstore_params p;
  memset(&p, 0, sizeof p);
  char *inner_url = NULL;
  int rc = store_alloc(url, &s);
  if (rc) return rc;

  int fault = strncmp(url, "fault+", 6) == 0;
  const char *body = fault ? url + 6 : url;
  const char *q = strchr(body, '?');
  size_t body_len = q ? (size_t)(q - body) : strlen(body);
  rc = params_parse(q ? q + 1 : NULL, &p);
  if (rc) goto out;

  const char *sep = strstr(body, "://");
  if (!sep || (size_t)(sep - body) >= body_len) {
    rc = quire__err(QUIRE_EINVAL, "store URL '%s' has no scheme://", url);
    goto out;
  }
  size_t scheme_len = (size_t)(sep - body);
  int is_s3 = scheme_len == 2 && strncmp(body, "s3", 2) == 0;

  uint64_t retries, hedge_ms;
  if (outer) {
    rc = objstore__param_u64(&p, "retries", is_s3 ? 4 : 0, &retries);
    if (!rc) rc = objstore__param_u64(&p, "backoff_ms", 20, &s->backoff_ms);
    if (!rc) rc = objstore__param_u64(&p, "deadline_ms", 30000, &s->deadline_ms);
    if (!rc) rc = objstore__param_u64(&p, "hedge_ms", 0, &hedge_ms);
    if (rc) goto out;
    if (retries > 100 || s->backoff_ms > 60000 || hedge_ms > 600000) {
      rc = quire__err(QUIRE_EINVAL, "retries, backoff_ms or hedge_ms out of range");
      goto out;
    }
    s->retries = (unsigned)retries;
    s->hedge_ms = hedge_ms;
  }

  if (fault) {
    rc = objstore__fault_open(s, NULL, &p); /* consumes the fault options */
    if (rc) goto out;
    rc = rebuild_inner_url(body, body_len, &p, &inner_url);
    if (!rc) rc = objstore__fault_open(s, inner_url, NULL);
    if (rc) goto out;
  } else {
    char *location = quire__malloc(body_len - scheme_len - 3 + 1);
    if (!location) {
      rc = QUIRE_ENOMEM;
      goto out;
    }
    memcpy(location, sep + 3, body_len - scheme_len - 3);
    location[body_len - scheme_len - 3] = 0;
    if (scheme_len == 4 && strncmp(body, "file", 4) == 0) {
      rc = objstore__file_open(s, location, &p);
    } else if (scheme_len == 3 && strncmp(body, "mem", 3) == 0) {
      rc = objstore__mem_open(s, location, &p);
    } else if (is_s3) {
      rc = objstore__s3_open(s, location, &p);
    } else {
      rc = quire__err(QUIRE_EUNSUPPORTED, "unknown store scheme in '%s'", url);
    }
    quire__free(location);
    if (rc) goto out;
  }
  for (size_t i = 0; i < p.n; i++) {
    if (!p.used[i]) {
      rc = quire__err(QUIRE_EINVAL, "unknown store URL parameter '%s'", p.key[i]);
      goto out;
    }
  }
out:
  quire__free(inner_url);
  params_free(&p);
  if (rc) {
    if (s->ops) s->ops->close(s);
    store_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int quire_objstore_open(const char *url, quire_objstore **out) { return open_url(url, 1, out); }
int objstore__open_inner(const char *url, quire_objstore **out) { return open_url(url, 0, out); }

void quire_objstore_close(quire_objstore *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  while (s->hedges_running) pthread_cond_wait(&s->hedges_done, &s->mu);
  pthread_mutex_unlock(&s->mu);
  if (s->ops) s->ops->close(s);
  store_free(s);
}

const char *quire_objstore_url(const quire_objstore *s) { return s->url; }

void quire_objstore_free(void *p) { quire__free(p); }

/* ---- counters, cancellation, deadlines ------------------------------------ */

static void count(_Atomic uint64_t *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

void quire_objstore_stats_get(const quire_objstore *s, quire_objstore_stats *out) {
  quire_objstore *m = (quire_objstore *)s;
  memset(out, 0, sizeof *out);
  for (int i = 0; i < QUIRE_OBJSTORE_OP_COUNT_; i++) {
    out->calls[i] = atomic_load(&m->calls[i]);
    out->attempts[i] = atomic_load(&m->attempts[i]);
  }
  out->retries = atomic_load(&m->retried);
  out->hedges = atomic_load(&m->hedges);
  out->hedge_wins = atomic_load(&m->hedge_wins);
  out->injected_errors = atomic_load(&m->inj_errors);
  out->injected_lost_acks = atomic_load(&m->inj_lost_acks);
  out->injected_latency = atomic_load(&m->inj_latency);
}

static _Thread_local quire_cancel *tl_cancel;
static _Thread_local uint64_t tl_deadline_ns;
static _Thread_local unsigned tl_retry_after_ms;

int objstore__cancelled(void) { return quire__cancel_fired(tl_cancel); }
quire_cancel *objstore__cancel_token(void) { return tl_cancel; }
uint64_t objstore__deadline_ns(void) { return tl_deadline_ns; }
void objstore__retry_after(unsigned ms) { tl_retry_after_ms = ms; }

int objstore__retryable(int rc) { return rc == QUIRE_EUNAVAILABLE || rc == QUIRE_ETIMEDOUT; }

/* A random number below `below` (probe keys). */
static uint64_t jitter(quire_objstore *s, uint64_t below) {
  pthread_mutex_lock(&s->mu);
  s->rng += 0x9E3779B97F4A7C15ull;
  uint64_t z = s->rng;
  pthread_mutex_unlock(&s->mu);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return below ? z % below : 0;
}

int objstore__with_retries(quire_objstore *s, int op, int (*attempt)(void *ctx), void *ctx) {
  uint64_t start = quire__mono_ns();
  uint64_t deadline = start + s->deadline_ms * 1000000ull;
  uint64_t saved_deadline = tl_deadline_ns;
  if (!tl_deadline_ns || deadline < tl_deadline_ns) tl_deadline_ns = deadline;
  int rc;
  for (unsigned try = 0;; try++) {
    count(&s->attempts[op]);
    tl_retry_after_ms = 0;
    rc = attempt(ctx);
    if (!objstore__retryable(rc) || try >= s->retries) break;
    /* The shared retry policy (util/backoff.h): jittered exponential
     * backoff, at least what the server asked for (S3 Retry-After), never
     * past the deadline. */
    unsigned delay = quire__backoff_delay((unsigned)s->backoff_ms, 5000, try);
    char why[256];
    snprintf(why, sizeof why, "%s", quire_errmsg());
    int w = quire__backoff_wait(delay, tl_retry_after_ms, tl_deadline_ns / 1000000u, NULL);
    if (w) {
      rc = quire__err(rc, "%s; gave up after %u attempts: deadline of %llu ms", why, try + 1,
                      (unsigned long long)s->deadline_ms);
      break;
    }
    count(&s->retried);
  }
  tl_deadline_ns = saved_deadline;
  return rc;
}

int objstore__write_all(int fd, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return quire__errno("objstore: write");
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* ---- operations ----------------------------------------------------------- */

struct put_ctx {
  quire_objstore *s;
  const char *key;
  const void *data;
  size_t len;
  int flags;
};

static int put_attempt(void *ctx) {
  struct put_ctx *c = ctx;
  return c->s->ops->put(c->s, c->key, c->data, c->len, c->flags);
}

static int do_put(quire_objstore *s, const char *key, const void *data, size_t len, int flags) {
  int op = (flags & QUIRE_OBJSTORE_IF_ABSENT) ? QUIRE_OBJSTORE_OP_PUT_IF_ABSENT : QUIRE_OBJSTORE_OP_PUT;
  count(&s->calls[op]);
  int rc = quire_objstore_key_check(key);
  if (rc) return rc;
  if (!data && len) return quire__err(QUIRE_EINVAL, "put: NULL data");
  struct put_ctx c = {s, key, data, len, flags};
  return objstore__with_retries(s, op, put_attempt, &c);
}

int quire_objstore_put(quire_objstore *s, const char *key, const void *data, size_t len) {
  return do_put(s, key, data, len, 0);
}

int quire_objstore_put_if_absent(quire_objstore *s, const char *key, const void *data, size_t len) {
  return do_put(s, key, data, len, QUIRE_OBJSTORE_IF_ABSENT);
}

/* A GET attempt, whole or ranged. */
struct get_ctx {
  quire_objstore *s;
  const char *key;
  int ranged;
  uint64_t off;
  size_t len;
  void *buf;     /* ranged: destination */
  size_t got;    /* ranged: bytes read */
  uint8_t *data; /* whole: result */
  size_t data_len;
};

static int get_once(struct get_ctx *c) {
  if (c->ranged) return c->s->ops->get_range(c->s, c->key, c->off, c->len, c->buf, &c->got);
  return c->s->ops->get(c->s, c->key, &c->data, &c->data_len);
}

/* A complete answer ends a race: success or a definitive failure. */
static int complete_answer(int rc) { return !objstore__retryable(rc) && rc != QUIRE_ECANCELED; }

struct race {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;
  int primary_done, hedge_started, hedge_done;
  int winner; /* 0 none, 1 primary, 2 hedge */
  int hedge_rc;
  quire_cancel *cancel_primary, *cancel_hedge; /* fired for the losing attempt */
  uint64_t start_ns;
  struct get_ctx hedge; /* the hedge's own attempt (own buffer when ranged) */
};

static void race_unref(struct race *r) {
  pthread_mutex_lock(&r->mu);
  int last = --r->refs == 0;
  pthread_mutex_unlock(&r->mu);
  if (!last) return;
  if (r->winner != 2) quire__free(r->hedge.data); /* a winner's data went to the caller */
  if (r->hedge.ranged) quire__free(r->hedge.buf); /* copied out when it won */
  quire__cancel_destroy(r->cancel_primary);
  quire__cancel_destroy(r->cancel_hedge);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  quire__free(r);
}

static void *hedge_main(void *arg) {
  struct race *r = arg;
  quire_objstore *s = r->hedge.s;
  struct timespec until;
  uint64_t at = r->start_ns + s->hedge_ms * 1000000ull;
  pthread_mutex_lock(&r->mu);
  while (!r->primary_done) {
    uint64_t now = quire__mono_ns();
    if (now >= at) break;
    quire__deadline_after_ms(&until, (at - now + 999999) / 1000000);
    pthread_cond_timedwait(&r->cv, &r->mu, &until);
  }
  int go = !r->primary_done;
  r->hedge_started = go;
  pthread_mutex_unlock(&r->mu);
  if (go) {
    count(&s->hedges);
    count(&s->attempts[r->hedge.ranged ? QUIRE_OBJSTORE_OP_GET_RANGE : QUIRE_OBJSTORE_OP_GET]);
    tl_cancel = r->cancel_hedge;
    int rc = get_once(&r->hedge);
    tl_cancel = NULL;
    pthread_mutex_lock(&r->mu);
    r->hedge_done = 1;
    r->hedge_rc = rc;
    if (!r->winner && complete_answer(rc)) {
      r->winner = 2;
      quire__cancel_fire(r->cancel_primary);
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
  }
  race_unref(r);
  pthread_mutex_lock(&s->mu);
  if (--s->hedges_running == 0) pthread_cond_broadcast(&s->hedges_done);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* One attempt, hedged when the store asks for it. */
static int get_attempt(void *arg) {
  struct get_ctx *c = arg;
  quire_objstore *s = c->s;
  if (!s->hedge_ms) return get_once(c);

  struct race *r = quire__calloc(1, sizeof *r);
  if (!r) return QUIRE_ENOMEM;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  r->refs = 2;
  r->start_ns = quire__mono_ns();
  if (quire__cancel_create(&r->cancel_primary) || quire__cancel_create(&r->cancel_hedge)) {
    r->refs = 1;
    race_unref(r);
    return QUIRE_ENOMEM;
  }
  r->hedge = *c;
  r->hedge.data = NULL;
  if (c->ranged) {
    r->hedge.buf = quire__malloc(c->len);
    if (!r->hedge.buf) {
      r->refs = 1;
      race_unref(r);
      return QUIRE_ENOMEM;
    }
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  pthread_mutex_lock(&s->mu);
  s->hedges_running++;
  pthread_mutex_unlock(&s->mu);
  if (pthread_create(&th, &attr, hedge_main, r) != 0) {
    pthread_mutex_lock(&s->mu);
    s->hedges_running--;
    pthread_mutex_unlock(&s->mu);
    r->refs = 1; /* no helper: run unhedged */
  }
  pthread_attr_destroy(&attr);

  tl_cancel = r->cancel_primary;
  int rc = get_once(c);
  tl_cancel = NULL;

  pthread_mutex_lock(&r->mu);
  r->primary_done = 1;
  pthread_cond_broadcast(&r->cv);
  if (!r->winner && complete_answer(rc)) {
    r->winner = 1;
    quire__cancel_fire(r->cancel_hedge);
  } else if (!r->winner && r->hedge_started) {
    /* Our answer is transient: let a running hedge finish and use it. */
    while (!r->hedge_done) pthread_cond_wait(&r->cv, &r->mu);
    if (complete_answer(r->hedge_rc)) r->winner = 2;
  }
  int hedge_won = r->winner == 2;
  pthread_mutex_unlock(&r->mu);
  if (hedge_won) {
    count(&s->hedge_wins);
    quire__free(c->data);
    c->data = NULL;
    rc = r->hedge_rc;
    if (c->ranged) {
      c->got = r->hedge.got;
      if (rc == 0 && c->got) memcpy(c->buf, r->hedge.buf, c->got);
    } else {
      c->data = r->hedge.data;
      c->data_len = r->hedge.data_len;
    }
  }
  race_unref(r);
  return rc;
}

int quire_objstore_get(quire_objstore *s, const char *key, uint8_t **data, size_t *len) {
  count(&s->calls[QUIRE_OBJSTORE_OP_GET]);
  *data = NULL;
  *len = 0;
  int rc = quire_objstore_key_check(key);
  if (rc) return rc;
  struct get_ctx c = {.s = s, .key = key};
  rc = objstore__with_retries(s, QUIRE_OBJSTORE_OP_GET, get_attempt, &c);
  if (rc) {
    quire__free(c.data);
    return rc;
  }
  *data = c.data;
  *len = c.data_len;
  return 0;
}

int quire_objstore_get_range(quire_objstore *s, const char *key, uint64_t off, size_t len, void *buf,
                             size_t *got) {
  count(&s->calls[QUIRE_OBJSTORE_OP_GET_RANGE]);
  *got = 0;
  int rc = quire_objstore_key_check(key);
  if (rc) return rc;
  if (!buf && len) return quire__err(QUIRE_EINVAL, "get_range: NULL buffer");
  if (off > INT64_MAX || len > INT64_MAX - off) return quire__err(QUIRE_ERANGE, "get_range: range overflows");
  struct get_ctx c = {.s = s, .key = key, .ranged = 1, .off = off, .len = len, .buf = buf};
  rc = objstore__with_retries(s, QUIRE_OBJSTORE_OP_GET_RANGE, get_attempt, &c);
  if (rc) return rc;
  *got = c.got;
  return 0;
}

struct head_ctx {
  quire_objstore *s;
  const char *key;
  quire_objstore_info *info;
};

static int head_attempt(void *arg) {
  struct head_ctx *c = arg;
  return c->s->ops->head(c->s, c->key, c->info);
}

int quire_objstore_head(quire_objstore *s, const char *key, quire_objstore_info *info) {
  count(&s->calls[QUIRE_OBJSTORE_OP_HEAD]);
  memset(info, 0, sizeof *info);
  int rc = quire_objstore_key_check(key);
  if (rc) return rc;
  struct head_ctx c = {s, key, info};
  return objstore__with_retries(s, QUIRE_OBJSTORE_OP_HEAD, head_attempt, &c);
}

struct del_ctx {
  quire_objstore *s;
  const char *key;
  int found;
};

static int del_attempt(void *arg) {
  struct del_ctx *c = arg;
  c->found = -1;
  return c->s->ops->del(c->s, c->key, &c->found);
}

int quire_objstore_delete_found(quire_objstore *s, const char *key, int *found) {
  count(&s->calls[QUIRE_OBJSTORE_OP_DELETE]);
  *found = -1;
  int rc = quire_objstore_key_check(key);
  if (rc) return rc;
  struct del_ctx c = {s, key, -1};
  rc = objstore__with_retries(s, QUIRE_OBJSTORE_OP_DELETE, del_attempt, &c);
  if (!rc) *found = c.found;
  return rc;
}

int quire_objstore_delete(quire_objstore *s, const char *key) {
  int found;
  return quire_objstore_delete_found(s, key, &found);
}

/* ---- list ----------------------------------------------------------------- */

int objstore__list_push(quire_objstore_list *out, const char *key, uint64_t size) {
  if ((out->count & (out->count + 1)) == 0 || out->count == 0) {
    /* grow at counts 0, 1, 3, 7, ...: capacity is the next power of two */
    size_t cap = out->count ? (out->count + 1) * 2 : 4;
    quire_objstore_entry *e = quire__realloc(out->entries, cap * sizeof *e);
    if (!e) return QUIRE_ENOMEM;
    out->entries = e;
  }
  char *k = quire__strdup(key);
  if (!k) return QUIRE_ENOMEM;
  out->entries[out->count].key = k;
  out->entries[out->count].size = size;
  out->count++;
  return 0;
}

void quire_objstore_list_free(quire_objstore_list *list) {
  if (!list) return;
  for (size_t i = 0; i < list->count; i++) quire__free(list->entries[i].key);
  quire__free(list->entries);
  memset(list, 0, sizeof *list);
}

struct list_ctx {
  quire_objstore *s;
  const char *prefix, *start_after;
  size_t limit;
  quire_objstore_list *out;
};

static int list_attempt(void *arg) {
  struct list_ctx *c = arg;
  quire_objstore_list_free(c->out);
  return c->s->ops->list(c->s, c->prefix, c->start_after, c->limit, c->out);
}

int quire_objstore_list_keys(quire_objstore *s, const char *prefix, const char *start_after, size_t limit,
                             quire_objstore_list *out) {
  count(&s->calls[QUIRE_OBJSTORE_OP_LIST]);
  memset(out, 0, sizeof *out);
  if (!prefix) prefix = "";
  if (!start_after) start_after = "";
  int rc = prefix_check(prefix);
  if (!rc) rc = prefix_check(start_after);
  if (rc) return rc;
  if (limit == 0) limit = 1000;
  if (limit > 10000) return quire__err(QUIRE_EINVAL, "list limit %zu over 10000", limit);
  struct list_ctx c = {s, prefix, start_after, limit, out};
  rc = objstore__with_retries(s, QUIRE_OBJSTORE_OP_LIST, list_attempt, &c);
  if (rc) quire_objstore_list_free(out);
  return rc;
}

/* ---- writers -------------------------------------------------------------- */

struct quire_objstore_writer {
  quire_objstore *s;
  struct objstore_wimpl *impl;
  const struct objstore_writer_ops *ops;
  uint64_t size;
  int failed; /* a write failed: commit refuses */
};

/* The fallback writer for backends without their own: a growing buffer that
 * becomes one put at commit (with the store's retries). */
struct buf_writer {
  quire_objstore *s;
  char *key;
  int flags;
  quire_buf buf;
};

static int bufw_write(struct objstore_wimpl *w, const void *data, size_t len) {
  struct buf_writer *b = (struct buf_writer *)w;
  return quire__buf_append(&b->buf, data, len);
}

static void bufw_abort(struct objstore_wimpl *w) {
  struct buf_writer *b = (struct buf_writer *)w;
  quire__buf_free(&b->buf);
  quire__free(b->key);
  quire__free(b);
}

static int bufw_commit(struct objstore_wimpl *w) {
  struct buf_writer *b = (struct buf_writer *)w;
  struct put_ctx c = {b->s, b->key, b->buf.data ? b->buf.data : (const void *)"", b->buf.len, b->flags};
  int rc = objstore__with_retries(b->s, QUIRE_OBJSTORE_OP_WRITER, put_attempt, &c);
  bufw_abort(w);
  return rc;
}

static const struct objstore_writer_ops bufw_ops = {bufw_write, bufw_commit, bufw_abort};

int quire_objstore_writer_open(quire_objstore *s, const char *key, int flags, quire_objstore_writer **out) {
  *out = NULL;
  int rc = quire_objstore_key_check(key);
  if (rc) return rc;
  if (flags & ~QUIRE_OBJSTORE_IF_ABSENT) return quire__err(QUIRE_EINVAL, "writer: unknown flags 0x%x", flags);
  quire_objstore_writer *w = quire__calloc(1, sizeof *w);
  if (!w) return QUIRE_ENOMEM;
  w->s = s;
  if (s->ops->writer_open) {
    rc = s->ops->writer_open(s, key, flags, &w->impl, &w->ops);
  } else {
    struct buf_writer *b = quire__calloc(1, sizeof *b);
    if (b) b->key = quire__strdup(key);
    if (!b || !b->key) {
      quire__free(b);
      rc = QUIRE_ENOMEM;
    } else {
      b->s = s;
      b->flags = flags;
      quire__buf_init(&b->buf, (size_t)INT64_MAX);
      w->impl = (struct objstore_wimpl *)b;
      w->ops = &bufw_ops;
    }
  }
  if (rc) {
    quire__free(w);
    return rc;
  }
  *out = w;
  return 0;
}

int quire_objstore_writer_write(quire_objstore_writer *w, const void *data, size_t len) {
  if (w->failed) return quire__err(QUIRE_EINVAL, "writer: an earlier write failed");
  if (!len) return 0;
  int rc = w->ops->write(w->impl, data, len);
  if (rc) {
    w->failed = 1;
    return rc;
  }
  w->size += len;
  return 0;
}

uint64_t quire_objstore_writer_size(const quire_objstore_writer *w) { return w->size; }

int quire_objstore_writer_commit(quire_objstore_writer *w) {
  quire_objstore *s = w->s;
  count(&s->calls[QUIRE_OBJSTORE_OP_WRITER]);
  if (w->failed) {
    quire_objstore_writer_abort(w);
    return quire__err(QUIRE_EINVAL, "writer: an earlier write failed; nothing published");
  }
  int rc = w->ops->commit(w->impl);
  quire__free(w);
  return rc;
}

void quire_objstore_writer_abort(quire_objstore_writer *w) {
  if (!w) return;
  w->ops->abort(w->impl);
  quire__free(w);
}

/* ---- probe ---------------------------------------------------------------- */

int quire_objstore_probe(quire_objstore *s, int *conditional) {
  *conditional = 0;
  uint64_t r = jitter(s, UINT64_MAX) ^ quire__mono_ns() ^ quire__wall_ms();
  char key[64];
  snprintf(key, sizeof key, "quire-probe/%016llx", (unsigned long long)r);
  int rc = quire_objstore_put_if_absent(s, key, "probe-1", 7);
  if (rc) return rc;
  rc = quire_objstore_put_if_absent(s, key, "probe-2", 7);
  if (rc == QUIRE_EEXIST) {
    *conditional = 1;
    rc = 0;
  } else if (rc == 0) {
    *conditional = 0;
  }
  int drc = quire_objstore_delete(s, key);
  return rc ? rc : drc;
}

/* ---- upload pool ---------------------------------------------------------- */

struct quire_objstore_uploads {
  quire_objstore *s;
  quire_pool *pool;
};

struct upload {
  quire_objstore *s;
  char *key;
  const void *data;
  size_t len;
  int flags;
  quire_objstore_done_fn done;
  void *arg;
};

static void upload_run(void *arg) {
  struct upload *u = arg;
  int rc = do_put(u->s, u->key, u->data, u->len, u->flags);
  if (u->done) u->done(u->arg, rc);
  quire__free(u->key);
  quire__free(u);
}

int quire_objstore_uploads_create(quire_objstore *s, unsigned concurrency, size_t queue,
                                  quire_objstore_uploads **out) {
  *out = NULL;
  if (concurrency == 0 || concurrency > 256)
    return quire__err(QUIRE_EINVAL, "upload concurrency %u", concurrency);
  quire_objstore_uploads *u = quire__calloc(1, sizeof *u);
  if (!u) return QUIRE_ENOMEM;
  u->s = s;
  int rc = quire__pool_create(concurrency, queue ? queue : 1, "upload", &u->pool);
  if (rc) {
    quire__free(u);
    return rc;
  }
  *out = u;
  return 0;
}

int quire_objstore_uploads_put(quire_objstore_uploads *u, const char *key, const void *data, size_t len,
                               int flags, quire_objstore_done_fn done, void *arg) {
  int rc = quire_objstore_key_check(key);
  if (rc) return rc;
  struct upload *t = quire__calloc(1, sizeof *t);
  if (!t) return QUIRE_ENOMEM;
  t->key = quire__strdup(key);
  if (!t->key) {
    quire__free(t);
    return QUIRE_ENOMEM;
  }
  t->s = u->s;
  t->data = data;
  t->len = len;
  t->flags = flags;
  t->done = done;
  t->arg = arg;
  rc = quire__pool_submit(u->pool, upload_run, t);
  if (rc) {
    quire__free(t->key);
    quire__free(t);
  }
  return rc;
}

void quire_objstore_uploads_wait(quire_objstore_uploads *u) { quire__pool_wait_idle(u->pool); }

void quire_objstore_uploads_destroy(quire_objstore_uploads *u) {
  if (!u) return;
  quire__pool_destroy(u->pool);
  quire__free(u);
}
