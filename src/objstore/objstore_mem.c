/*
 * objstore/objstore_mem.c — `mem://`: an in-process object store for tests.
 *
 * A sorted array of (key, bytes, version) under one mutex; every call copies
 * bytes in or out, so callers never share memory with the store. Each open
 * is a fresh, empty store (the name after mem:// is only a label).
 * Streaming writers use the generic buffering writer (one copy, built in
 * place, handed over at commit).
 */
#include "objstore/objstore_int.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

struct mem_obj {
  char *key;
  uint8_t *data;
  size_t len;
  uint64_t version;
};

struct mem_store {
  pthread_mutex_t mu;   /* protects everything below */
  struct mem_obj *objs; /* sorted by key (strcmp = byte order) */
  size_t count, cap;
  uint64_t next_version;
};

/* Index of the first object with key >= key. Caller holds mu. */
static size_t lower_bound(struct mem_store *m, const char *key) {
  size_t lo = 0, hi = m->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(m->objs[mid].key, key) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static struct mem_obj *find(struct mem_store *m, const char *key) {
  size_t i = lower_bound(m, key);
  return i < m->count && strcmp(m->objs[i].key, key) == 0 ? &m->objs[i] : NULL;
}

/* The object at key, or NULL with a QUIRE_ENOTFOUND detail recorded.
 * Caller holds mu. */
static struct mem_obj *find_or_err(struct mem_store *m, const char *key, int *rc) {
  struct mem_obj *o = find(m, key);
  *rc = o ? 0 : quire__err(QUIRE_ENOTFOUND, "mem: no object '%s'", key);
  return o;
}

static int mem_put(quire_objstore *s, const char *key, const void *data, size_t len, int flags) {
  struct mem_store *m = s->impl;
  uint8_t *copy = quire__memdup(data ? data : "", len);
  if (!copy) return QUIRE_ENOMEM;
  int rc = 0;
  pthread_mutex_lock(&m->mu);
  size_t i = lower_bound(m, key);
  if (i < m->count && strcmp(m->objs[i].key, key) == 0) {
    if (flags & QUIRE_OBJSTORE_IF_ABSENT) {
      rc = quire__err(QUIRE_EEXIST, "mem: '%s' exists", key);
    } else {
      quire__free(m->objs[i].data);
      m->objs[i].data = copy;
      m->objs[i].len = len;
      m->objs[i].version = ++m->next_version;
      copy = NULL;
    }
    goto out;
  }
  if (m->count == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct mem_obj *o = quire__realloc(m->objs, cap * sizeof *o);
    if (!o) {
      rc = QUIRE_ENOMEM;
      goto out;
    }
    m->objs = o;
    m->cap = cap;
  }
  char *k = quire__strdup(key);
  if (!k) {
    rc = QUIRE_ENOMEM;
    goto out;
  }
  memmove(&m->objs[i + 1], &m->objs[i], (m->count - i) * sizeof *m->objs);
  m->objs[i] = (struct mem_obj){k, copy, len, ++m->next_version};
  m->count++;
  copy = NULL;
out:
  pthread_mutex_unlock(&m->mu);
  quire__free(copy);
  return rc;
}

static int mem_get(quire_objstore *s, const char *key, uint8_t **data, size_t *len) {
  struct mem_store *m = s->impl;
  int rc;
  pthread_mutex_lock(&m->mu);
  struct mem_obj *o = find_or_err(m, key, &rc);
  if (o) {
    *data = quire__memdup(o->data, o->len);
    *len = o->len;
    if (!*data) rc = QUIRE_ENOMEM;
  }
  pthread_mutex_unlock(&m->mu);
  return rc;
}

static int mem_get_range(quire_objstore *s, const char *key, uint64_t off, size_t len, void *buf,
                         size_t *got) {
  struct mem_store *m = s->impl;
  int rc;
  pthread_mutex_lock(&m->mu);
  struct mem_obj *o = find_or_err(m, key, &rc);
  if (o && off > o->len) {
    rc = quire__err(QUIRE_ERANGE, "mem: offset %llu past the end (%zu) of '%s'", (unsigned long long)off,
                    o->len, key);
  } else if (o) {
    size_t n = QUIRE_MIN(len, o->len - (size_t)off);
    if (n) memcpy(buf, o->data + off, n);
    *got = n;
  }
  pthread_mutex_unlock(&m->mu);
  return rc;
}

static int mem_head(quire_objstore *s, const char *key, quire_objstore_info *info) {
  struct mem_store *m = s->impl;
  int rc;
  pthread_mutex_lock(&m->mu);
  struct mem_obj *o = find_or_err(m, key, &rc);
  if (o) {
    info->size = o->len;
    snprintf(info->etag, sizeof info->etag, "v%llu", (unsigned long long)o->version);
  }
  pthread_mutex_unlock(&m->mu);
  return rc;
}

static int mem_list(quire_objstore *s, const char *prefix, const char *start_after, size_t limit,
                    quire_objstore_list *out) {
  struct mem_store *m = s->impl;
  size_t plen = strlen(prefix);
  int rc = 0;
  pthread_mutex_lock(&m->mu);
  size_t i = lower_bound(m, strcmp(start_after, prefix) > 0 ? start_after : prefix);
  for (; i < m->count; i++) {
    struct mem_obj *o = &m->objs[i];
    if (strncmp(o->key, prefix, plen) != 0) break;
    if (strcmp(o->key, start_after) <= 0) continue;
    if (out->count == limit) {
      out->truncated = 1;
      break;
    }
    rc = objstore__list_push(out, o->key, o->len);
    if (rc) break;
  }
  pthread_mutex_unlock(&m->mu);
  return rc;
}

static int mem_del(quire_objstore *s, const char *key, int *found) {
  struct mem_store *m = s->impl;
  pthread_mutex_lock(&m->mu);
  size_t i = lower_bound(m, key);
  *found = i < m->count && strcmp(m->objs[i].key, key) == 0;
  if (*found) {
    quire__free(m->objs[i].key);
    quire__free(m->objs[i].data);
    memmove(&m->objs[i], &m->objs[i + 1], (m->count - i - 1) * sizeof *m->objs);
    m->count--;
  }
  pthread_mutex_unlock(&m->mu);
  return 0;
}

static void mem_close(quire_objstore *s) {
  struct mem_store *m = s->impl;
  if (!m) return;
  for (size_t i = 0; i < m->count; i++) {
    quire__free(m->objs[i].key);
    quire__free(m->objs[i].data);
  }
  quire__free(m->objs);
  pthread_mutex_destroy(&m->mu);
  quire__free(m);
  s->impl = NULL;
}

static const struct objstore_ops mem_ops = {
    .scheme = "mem",
    .put = mem_put,
    .get = mem_get,
    .get_range = mem_get_range,
    .head = mem_head,
    .list = mem_list,
    .del = mem_del,
    .writer_open = NULL,
    .close = mem_close,
};

int objstore__mem_open(quire_objstore *s, const char *location, struct objstore_params *p) {
  QUIRE_UNUSED(location);
  QUIRE_UNUSED(p);
  struct mem_store *m = quire__calloc(1, sizeof *m);
  if (!m) return QUIRE_ENOMEM;
  pthread_mutex_init(&m->mu, NULL);
  s->impl = m;
  s->ops = &mem_ops;
  return 0;
}
