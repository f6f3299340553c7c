/*
 * net/xfer.c — the shared libcurl layer (see xfer.h).
 *
 * Locking: p->mu protects the idle stack only. A borrowed connection is used
 * by one thread with no lock held. A running transfer watches its cancel
 * token: the token's fire calls wake() under the token's lock, and
 * quire__xfer_run unwatches (taking that lock) before the multi handle can
 * go back to the pool, so a wake never reaches a multi handle that another
 * thread has borrowed since.
 */
#include "net/xfer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"

struct quire_xfer_conn {
  CURL *easy;
  CURLM *multi; /* drives easy; owns the connection cache */
};

struct quire_xfer_pool {
  pthread_mutex_t mu; /* protects idle[] and nidle */
  unsigned max_idle, nidle;
  quire_xfer_conn **idle;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int quire__xfer_pool_create(unsigned max_idle, quire_xfer_pool **out) {
  *out = NULL;
  pthread_once(&curl_once, curl_init_once);
  quire_xfer_pool *p = quire__calloc(1, sizeof *p);
  if (!p) return QUIRE_ENOMEM;
  p->max_idle = max_idle ? max_idle : 32;
  p->idle = quire__calloc(p->max_idle, sizeof *p->idle);
  if (!p->idle) {
    quire__free(p);
    return QUIRE_ENOMEM;
  }
  pthread_mutex_init(&p->mu, NULL);
  *out = p;
  return 0;
}

static void conn_free(quire_xfer_conn *x) {
  if (!x) return;
  if (x->easy) curl_easy_cleanup(x->easy);
  if (x->multi) curl_multi_cleanup(x->multi);
  quire__free(x);
}

void quire__xfer_pool_destroy(quire_xfer_pool *p) {
  if (!p) return;
  for (unsigned i = 0; i < p->nidle; i++) conn_free(p->idle[i]);
  pthread_mutex_destroy(&p->mu);
  quire__free(p->idle);
  quire__free(p);
}

static void base_options(CURL *h) {
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
}

quire_xfer_conn *quire__xfer_borrow(quire_xfer_pool *p) {
  quire_xfer_conn *x = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->nidle) x = p->idle[--p->nidle];
  pthread_mutex_unlock(&p->mu);
  if (x) {
    curl_easy_reset(x->easy); /* options only; the connection stays in the multi's cache */
    base_options(x->easy);
    return x;
  }
  x = quire__calloc(1, sizeof *x);
  if (!x) return NULL;
  x->easy = curl_easy_init();
  x->multi = curl_multi_init();
  if (!x->easy || !x->multi) {
    conn_free(x);
    return NULL;
  }
  /* One transfer at a time per multi: a single cached connection is enough. */
  curl_multi_setopt(x->multi, CURLMOPT_MAXCONNECTS, 1L);
  base_options(x->easy);
  return x;
}

CURL *quire__xfer_easy(quire_xfer_conn *x) { return x->easy; }

void quire__xfer_give_back(quire_xfer_pool *p, quire_xfer_conn *x, int reusable) {
  if (!x) return;
  if (reusable) {
    pthread_mutex_lock(&p->mu);
    if (p->nidle < p->max_idle) {
      p->idle[p->nidle++] = x;
      x = NULL;
    }
    pthread_mutex_unlock(&p->mu);
  }
  conn_free(x);
}

static void wake(void *ctx) { curl_multi_wakeup(ctx); }

int quire__xfer_run(quire_xfer_conn *x, uint64_t deadline_ms, quire_cancel *cancel, CURLcode *result) {
  *result = CURLE_OK;
  struct quire_cancel_watch w = {.fn = wake, .ctx = x->multi};
  if (quire__cancel_watch(cancel, &w) != 0) return quire__err(QUIRE_ECANCELED, "cancelled");
  if (curl_multi_add_handle(x->multi, x->easy) != CURLM_OK) {
    quire__cancel_unwatch(cancel, &w);
    return quire__err(QUIRE_ENOMEM, "curl: cannot start a transfer");
  }
  int rc = 0, done = 0;
  for (;;) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(x->multi, &running);
    if (mc != CURLM_OK) {
      rc = quire__err(mc == CURLM_OUT_OF_MEMORY ? QUIRE_ENOMEM : QUIRE_EIO, "curl: %s",
                      curl_multi_strerror(mc));
      break;
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(x->multi, &left)) != NULL) {
      if (m->msg == CURLMSG_DONE && m->easy_handle == x->easy) {
        *result = m->data.result;
        done = 1;
      }
    }
    if (done) break;
    if (!running) { /* finished without a message: should not happen */
      rc = quire__err(QUIRE_EIO, "curl: transfer ended without a result");
      break;
    }
    if (quire__cancel_fired(cancel)) {
      rc = quire__err(QUIRE_ECANCELED, "cancelled");
      break;
    }
    uint64_t now = quire__now_ms();
    if (deadline_ms && now >= deadline_ms) {
      rc = quire__err(QUIRE_ETIMEDOUT, "deadline passed");
      break;
    }
    uint64_t wait = deadline_ms ? deadline_ms - now : 1000;
    if (wait > 1000) wait = 1000;
    mc = curl_multi_poll(x->multi, NULL, 0, (int)wait, NULL);
    if (mc != CURLM_OK) {
      rc = quire__err(QUIRE_EIO, "curl: %s", curl_multi_strerror(mc));
      break;
    }
  }
  quire__cancel_unwatch(cancel, &w);
  curl_multi_remove_handle(x->multi, x->easy);
  return rc;
}

int quire__xfer_status_line(const char *line, size_t len, long *status) {
  if (len < 12 || strncmp(line, "HTTP/", 5) != 0) return 0;
  const char *sp = memchr(line, ' ', len);
  if (!sp || (size_t)(line + len - sp) < 4) return 0;
  long code = 0;
  for (int i = 1; i <= 3; i++) {
    char c = sp[i];
    if (c < '0' || c > '9') return 0;
    code = code * 10 + (c - '0');
  }
  *status = code;
  return 1;
}

int quire__xfer_retry_after(const char *line, size_t len, unsigned *ms) {
  static const char name[] = "retry-after:";
  size_t n = sizeof name - 1;
  if (len <= n || strncasecmp(line, name, n) != 0) return 0;
  size_t i = n;
  while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
  unsigned long secs = 0;
  size_t digits = 0;
  for (; i < len && line[i] >= '0' && line[i] <= '9'; i++, digits++) {
    if (secs < 3600) secs = secs * 10 + (unsigned long)(line[i] - '0');
  }
  while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n')) i++;
  if (!digits || i != len) return 0;
  if (secs > 3600) secs = 3600;
  *ms = (unsigned)secs * 1000u;
  return 1;
}
