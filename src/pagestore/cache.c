/*
 * pagestore/cache.c — pinned, budgeted disk cache of segments (see cache.h).
 *
 * Files are named "{segment id}.{seq:016x}.seg": the sequence number makes
 * every file name unique, so an evicted file being unlinked outside the lock
 * can never race with a fresh copy of the same segment being published.
 * Writes go to an O_TMPFILE in the cache directory and are linked into place
 * on publish (fallback: ".tmp-*" file + rename); a crash leaves either
 * nothing or a ".tmp-*" leftover that the next open deletes.
 *
 * Entry life cycle (all transitions under cache.mu):
 *   reserve → WRITING (in the table, bytes counted, not in the LRU)
 *   publish → READY   (in the LRU list; pinnable)
 *   evict / invalidate → removed from table and LRU; "retired" (bytes
 *   uncounted, file unlinked, mapping dropped outside the lock) as soon as no
 *   pin holds it.
 */
#include "pagestore/cache.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { E_WRITING, E_READY };

struct entry {
  quire_gid sid;
  uint64_t size;
  uint64_t seq;
  int state;
  int doomed;  /* out of the table; retire when pins reach 0 */
  int mapping; /* a thread is mapping it now (outside the lock) */
  unsigned pins;
  uint8_t *map;   /* NULL while unmapped */
  char *tmp_path; /* fallback temp file while WRITING, else NULL */
  struct entry *hnext;
  struct entry *prev, *next; /* LRU list of READY entries, most recent first */
  struct entry *gnext;       /* graveyard chain */
};

struct ps_cache {
  pthread_mutex_t mu;     /* guards everything below */
  pthread_cond_t changed; /* broadcast on unpin, publish, abandon, map done */
  struct entry **buckets;
  size_t nbuckets, nentries_table;
  struct entry *lru_head, *lru_tail;
  uint64_t bytes, entries, mappings, pinned_entries, seq;
  uint64_t hits, misses, evictions, unmaps, dropped_on_open;
  ps_cache_options o;
  char *dir;
  int dirfd;
};

/* ---- small helpers (call with mu held unless noted) ------------------- */

static size_t bucket_of(const ps_cache *c, const quire_gid *sid) {
  return (size_t)(quire__xxh3(sid->b, sizeof sid->b) & (c->nbuckets - 1));
}

static struct entry *find(ps_cache *c, const quire_gid *sid) {
  for (struct entry *e = c->buckets[bucket_of(c, sid)]; e; e = e->hnext)
    if (quire_gid_cmp(&e->sid, sid) == 0) return e;
  return NULL;
}

static void grow_table(ps_cache *c) {
  if (c->nentries_table < c->nbuckets * 2) return;
  size_t n = c->nbuckets * 2;
  struct entry **b = quire__calloc(n, sizeof *b);
  if (!b) return; /* longer chains, still correct */
  struct entry **old = c->buckets;
  size_t oldn = c->nbuckets;
  c->buckets = b;
  c->nbuckets = n;
  for (size_t i = 0; i < oldn; i++) {
    for (struct entry *e = old[i], *next; e; e = next) {
      next = e->hnext;
      size_t h = bucket_of(c, &e->sid);
      e->hnext = b[h];
      b[h] = e;
    }
  }
  quire__free(old);
}

static void table_insert(ps_cache *c, struct entry *e) {
  size_t h = bucket_of(c, &e->sid);
  e->hnext = c->buckets[h];
  c->buckets[h] = e;
  c->nentries_table++;
  grow_table(c);
}

static void table_remove(ps_cache *c, struct entry *e) {
  struct entry **pp = &c->buckets[bucket_of(c, &e->sid)];
  while (*pp && *pp != e) pp = &(*pp)->hnext;
  if (*pp) {
    *pp = e->hnext;
    c->nentries_table--;
  }
  e->hnext = NULL;
}

static void lru_unlink(ps_cache *c, struct entry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else if (c->lru_head == e)
    c->lru_head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else if (c->lru_tail == e)
    c->lru_tail = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push_front(ps_cache *c, struct entry *e) {
  e->prev = NULL;
  e->next = c->lru_head;
  if (c->lru_head) c->lru_head->prev = e;
  c->lru_head = e;
  if (!c->lru_tail) c->lru_tail = e;
}

static void file_name(const struct entry *e, char *out, size_t cap) {
  char sid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&e->sid, sid);
  snprintf(out, cap, "%s.%016llx.seg", sid, (unsigned long long)e->seq);
}

/* Takes an entry out of the accounting and onto the graveyard; the caller
 * buries the graveyard after dropping the lock. */
static void retire(ps_cache *c, struct entry *e, struct entry **grave) {
  c->bytes -= e->size;
  if (e->map) c->mappings--;
  e->gnext = *grave;
  *grave = e;
  pthread_cond_broadcast(&c->changed);
}

/* Outside the lock: unmap, delete the file (if delete_files), free. */
static void bury(ps_cache *c, struct entry *grave, int delete_files) {
  while (grave) {
    struct entry *e = grave;
    grave = e->gnext;
    if (e->map) munmap(e->map, e->size);
    if (delete_files && e->state == E_READY) {
      char name[64];
      file_name(e, name, sizeof name);
      if (unlinkat(c->dirfd, name, 0) != 0 && errno != ENOENT)
        QLOG_WARN("cache: cannot delete %s/%s: %s", c->dir, name, strerror(errno));
    }
    quire__free(e->tmp_path);
    quire__free(e);
  }
}

/* Evicts unpinned LRU entries until need more bytes fit. 0, or QUIRE_EBUSY
 * when pinned or in-flight entries leave no room. */
static int make_room(ps_cache *c, uint64_t need, struct entry **grave) {
  while (c->bytes + need > c->o.budget_bytes) {
    struct entry *v = c->lru_tail;
    while (v && (v->pins > 0 || v->mapping)) v = v->prev;
    if (!v) return QUIRE_EBUSY;
    lru_unlink(c, v);
    table_remove(c, v);
    v->doomed = 1;
    c->entries--;
    c->evictions++;
    retire(c, v, grave);
  }
  return 0;
}

/* Waits on c->changed until *deadline; QUIRE_ETIMEDOUT when it passes. */
static int wait_changed(ps_cache *c, const struct timespec *deadline) {
  int w = pthread_cond_timedwait(&c->changed, &c->mu, deadline);
  return w == ETIMEDOUT ? QUIRE_ETIMEDOUT : 0;
}

/* ---- open / close ------------------------------------------------------ */

struct found {
  quire_gid sid;
  uint64_t seq, size;
  struct timespec mtime;
  char name[64];
};

static int cmp_found(const void *a, const void *b) {
  const struct found *x = a, *y = b;
  if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
  if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Parses "{sid}.{seq:016x}.seg". */
static int parse_name(const char *name, quire_gid *sid, uint64_t *seq) {
  size_t n = strlen(name);
  if (n != QUIRE_GID_TEXT_LEN + 1 + 16 + 4 || name[QUIRE_GID_TEXT_LEN] != '.' ||
      strcmp(name + n - 4, ".seg") != 0)
    return -1;
  if (quire_gid_parse(name, QUIRE_GID_TEXT_LEN, QUIRE_GID_SEGMENT, sid) != 0) return -1;
  uint64_t v = 0;
  for (size_t i = QUIRE_GID_TEXT_LEN + 1; i < QUIRE_GID_TEXT_LEN + 17; i++) {
    char ch = name[i];
    int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = (v << 4) | (uint64_t)d;
  }
  *seq = v;
  return 0;
}

/* Maps a file read-only to validate it; 0 keeps it. */
static int validate_file(ps_cache *c, const struct found *f) {
  if (!c->o.validate) return 0;
  int fd = openat(c->dirfd, f->name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return -1;
  int rc = c->o.validate(m, f->size, &f->sid, c->o.validate_ctx);
  munmap(m, f->size);
  return rc;
}

/* Scans the directory at open: deletes leftovers and invalid files and
 * loads the rest, oldest first, trimmed to the budget. */
static int scan(ps_cache *c) {
  int fd = dup(c->dirfd);
  if (fd < 0) return quire__errno("cache: dup");
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return quire__errno("cache: opendir %s", c->dir);
  }
  struct found *all = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *name = de->d_name;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
    if (strncmp(name, ".tmp-", 5) == 0) {
      unlinkat(c->dirfd, name, 0);
      continue;
    }
    struct found f;
    struct stat st;
    if (parse_name(name, &f.sid, &f.seq) != 0 || fstatat(c->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode)) {
      QLOG_WARN("cache: ignoring unexpected entry %s/%s", c->dir, name);
      continue;
    }
    if (st.st_size == 0) {
      unlinkat(c->dirfd, name, 0);
      c->dropped_on_open++;
      continue;
    }
    f.size = (uint64_t)st.st_size;
    f.mtime = st.st_mtim;
    memcpy(f.name, name, strlen(name) + 1); /* parse_name bounded it to 43 bytes */
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 64;
      struct found *p = quire__realloc(all, ncap * sizeof *p);
      if (!p) {
        rc = QUIRE_ENOMEM;
        goto out;
      }
      all = p;
      cap = ncap;
    }
    all[n++] = f;
  }
  if (n > 1) qsort(all, n, sizeof *all, cmp_found);
  for (size_t i = 0; i < n; i++) {
    const struct found *f = &all[i];
    if (f->seq >= c->seq) c->seq = f->seq + 1;
    if (find(c, &f->sid) || validate_file(c, f) != 0) {
      QLOG_WARN("cache: deleting %s/%s (duplicate or failed validation)", c->dir, f->name);
      unlinkat(c->dirfd, f->name, 0);
      c->dropped_on_open++;
      continue;
    }
    struct entry *e = quire__calloc(1, sizeof *e);
    if (!e) {
      rc = QUIRE_ENOMEM;
      goto out;
    }
    e->sid = f->sid;
    e->seq = f->seq;
    e->size = f->size;
    e->state = E_READY;
    table_insert(c, e);
    lru_push_front(c, e);
    c->entries++;
    c->bytes += e->size;
    struct entry *grave = NULL;
    make_room(c, 0, &grave); /* nothing is pinned yet: always succeeds */
    bury(c, grave, 1);
  }
out:
  quire__free(all);
  closedir(d);
  return rc;
}

int ps__cache_open(const ps_cache_options *opts, ps_cache **out) {
  *out = NULL;
  if (!opts->dir || !*opts->dir) return quire__err(QUIRE_EINVAL, "cache: no directory");
  if (opts->budget_bytes == 0 || opts->max_mappings == 0)
    return quire__err(QUIRE_EINVAL, "cache: budget and max_mappings must be positive");
  ps_cache *c = quire__calloc(1, sizeof *c);
  if (!c) return QUIRE_ENOMEM;
  c->o = *opts;
  c->dirfd = -1;
  c->nbuckets = 256;
  c->buckets = quire__calloc(c->nbuckets, sizeof *c->buckets);
  c->dir = quire__strdup(opts->dir);
  if (!c->buckets || !c->dir) {
    ps__cache_close(c);
    return QUIRE_ENOMEM;
  }
  c->o.dir = c->dir;
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->changed, &ca);
  pthread_condattr_destroy(&ca);
  int rc;
  if (mkdir(c->dir, 0700) != 0 && errno != EEXIST) {
    rc = quire__errno("cache: mkdir %s", c->dir);
    goto fail;
  }
  c->dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (c->dirfd < 0) {
    rc = quire__errno("cache: open %s", c->dir);
    goto fail;
  }
  rc = scan(c);
  if (rc) goto fail;
  *out = c;
  return 0;
fail:
  ps__cache_close(c);
  return rc;
}

void ps__cache_close(ps_cache *c) {
  if (!c) return;
  struct entry *grave = NULL;
  if (c->buckets) {
    for (size_t i = 0; i < c->nbuckets; i++) {
      for (struct entry *e = c->buckets[i], *next; e; e = next) {
        next = e->hnext;
        if (e->pins) QLOG_ERROR("cache: closing with a pinned entry");
        e->gnext = grave;
        grave = e;
      }
    }
  }
  bury(c, grave, 0); /* keep the files: the cache resumes on the next open */
  if (c->dirfd >= 0) {
    close(c->dirfd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->changed);
  }
  quire__free(c->buckets);
  quire__free(c->dir);
  quire__free(c);
}

/* ---- writing ---------------------------------------------------------- */

static void deadline_in(struct timespec *ts, uint64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(ms / 1000);
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static int open_temp(ps_cache *c, struct entry *e, int *fd_out) {
  int fd = openat(c->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) {
    *fd_out = fd;
    return 0;
  }
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return quire__errno("cache: O_TMPFILE in %s", c->dir);
  size_t len = strlen(c->dir) + 64;
  e->tmp_path = quire__malloc(len);
  if (!e->tmp_path) return QUIRE_ENOMEM;
  snprintf(e->tmp_path, len, "%s/.tmp-%016llx-XXXXXX", c->dir, (unsigned long long)e->seq);
  fd = mkostemp(e->tmp_path, O_CLOEXEC);
  if (fd < 0) return quire__errno("cache: mkstemp in %s", c->dir);
  *fd_out = fd;
  return 0;
}

int ps__cache_reserve(ps_cache *c, const quire_gid *sid, uint64_t size, ps_cache_slot *out) {
  memset(out, 0, sizeof *out);
  out->fd = -1;
  if (size == 0) return quire__err(QUIRE_EINVAL, "cache: empty entry");
  if (size > c->o.budget_bytes)
    return quire__err(QUIRE_ETOOLARGE, "cache: %llu bytes exceed the budget of %llu",
                      (unsigned long long)size, (unsigned long long)c->o.budget_bytes);
  struct entry *e = quire__calloc(1, sizeof *e);
  if (!e) return QUIRE_ENOMEM;
  e->sid = *sid;
  e->size = size;
  e->state = E_WRITING;
  struct timespec deadline;
  deadline_in(&deadline, c->o.wait_ms);
  struct entry *grave = NULL;
  int rc = 0;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    if (find(c, sid)) {
      rc = QUIRE_EEXIST;
      break;
    }
    if (make_room(c, size, &grave) == 0) break;
    if (wait_changed(c, &deadline) == QUIRE_ETIMEDOUT) {
      rc = quire__err(QUIRE_EUNAVAILABLE, "cache: budget full of pinned entries for %llu ms",
                      (unsigned long long)c->o.wait_ms);
      break;
    }
  }
  if (rc == 0) {
    e->seq = c->seq++;
    table_insert(c, e);
    c->bytes += size;
  }
  pthread_mutex_unlock(&c->mu);
  bury(c, grave, 1);
  if (rc) {
    quire__free(e);
    return rc;
  }
  out->cache = c;
  out->entry = e;
  rc = open_temp(c, e, &out->fd);
  if (rc) ps__cache_abandon(out);
  return rc;
}

int ps__cache_slot_write(ps_cache_slot *s, const void *p, size_t n) {
  struct entry *e = s->entry;
  if (!e) return quire__err(QUIRE_EINVAL, "cache: write to an empty slot");
  if (n > e->size - s->written) return quire__err(QUIRE_ETOOLARGE, "cache: write past the reserved size");
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t w = pwrite(s->fd, b, n, (off_t)s->written);
    if (w < 0) {
      if (errno == EINTR) continue;
      return quire__errno("cache: write");
    }
    b += w;
    n -= (size_t)w;
    s->written += (uint64_t)w;
  }
  return 0;
}

void ps__cache_abandon(ps_cache_slot *s) {
  struct entry *e = s->entry;
  if (!e) return;
  ps_cache *c = s->cache;
  if (s->fd >= 0) close(s->fd);
  if (e->tmp_path) unlink(e->tmp_path);
  pthread_mutex_lock(&c->mu);
  table_remove(c, e);
  c->bytes -= e->size;
  pthread_cond_broadcast(&c->changed);
  pthread_mutex_unlock(&c->mu);
  quire__free(e->tmp_path);
  quire__free(e);
  s->entry = NULL;
  s->fd = -1;
}

int ps__cache_publish(ps_cache_slot *s) {
  struct entry *e = s->entry;
  if (!e) return quire__err(QUIRE_EINVAL, "cache: publish of an empty slot");
  ps_cache *c = s->cache;
  int rc = 0;
  char name[64];
  file_name(e, name, sizeof name);
  if (s->written != e->size) {
    rc = quire__err(QUIRE_EINVAL, "cache: wrote %llu of %llu reserved bytes", (unsigned long long)s->written,
                    (unsigned long long)e->size);
    goto fail;
  }
  if (c->o.fsync && fdatasync(s->fd) != 0) {
    rc = quire__errno("cache: fsync");
    goto fail;
  }
  if (e->tmp_path) {
    if (renameat(AT_FDCWD, e->tmp_path, c->dirfd, name) != 0) {
      rc = quire__errno("cache: rename into %s", c->dir);
      goto fail;
    }
    quire__free(e->tmp_path);
    e->tmp_path = NULL;
  } else {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", s->fd);
    if (linkat(AT_FDCWD, proc, c->dirfd, name, AT_SYMLINK_FOLLOW) != 0) {
      rc = quire__errno("cache: link into %s", c->dir);
      goto fail;
    }
  }
  close(s->fd);
  s->fd = -1;
  if (c->o.fsync) fsync(c->dirfd);
  pthread_mutex_lock(&c->mu);
  e->state = E_READY;
  lru_push_front(c, e);
  c->entries++;
  pthread_cond_broadcast(&c->changed);
  pthread_mutex_unlock(&c->mu);
  s->entry = NULL;
  return 0;
fail:
  ps__cache_abandon(s);
  return rc;
}

int ps__cache_put(ps_cache *c, const quire_gid *sid, const void *bytes, size_t len) {
  ps_cache_slot s;
  int rc = ps__cache_reserve(c, sid, len, &s);
  if (rc) return rc;
  rc = ps__cache_slot_write(&s, bytes, len);
  if (rc) {
    ps__cache_abandon(&s);
    return rc;
  }
  return ps__cache_publish(&s);
}

/* ---- reading ---------------------------------------------------------- */

/* Drops a pin under the lock; retires the entry if it was doomed. */
static void unpin_locked(ps_cache *c, struct entry *e, struct entry **grave) {
  if (--e->pins == 0) {
    c->pinned_entries--;
    if (e->doomed) retire(c, e, grave);
  }
  pthread_cond_broadcast(&c->changed);
}

int ps__cache_pin(ps_cache *c, const quire_gid *sid, ps_cache_pin *out) {
  memset(out, 0, sizeof *out);
  struct timespec deadline;
  deadline_in(&deadline, c->o.wait_ms);
  struct entry *grave = NULL;
  int rc = 0;
  pthread_mutex_lock(&c->mu);
  struct entry *e = find(c, sid);
  if (!e || e->state != E_READY) {
    c->misses++;
    pthread_mutex_unlock(&c->mu);
    return QUIRE_ENOTFOUND;
  }
  c->hits++;
  if (e->pins++ == 0) c->pinned_entries++;
  lru_unlink(c, e);
  lru_push_front(c, e);
  while (!e->map) {
    if (e->mapping) { /* someone else is mapping it: wait for them */
      if (wait_changed(c, &deadline) == QUIRE_ETIMEDOUT) {
        rc = quire__err(QUIRE_EUNAVAILABLE, "cache: mapping took too long");
        break;
      }
      continue;
    }
    if (c->mappings >= c->o.max_mappings) {
      struct entry *v = c->lru_tail;
      while (v && (!v->map || v->pins > 0)) v = v->prev;
      if (!v) {
        if (wait_changed(c, &deadline) == QUIRE_ETIMEDOUT) {
          rc = quire__err(QUIRE_EUNAVAILABLE, "cache: every mapping is pinned");
          break;
        }
        continue;
      }
      uint8_t *old = v->map;
      size_t old_len = v->size;
      v->map = NULL;
      c->mappings--;
      c->unmaps++;
      pthread_mutex_unlock(&c->mu);
      munmap(old, old_len);
      pthread_mutex_lock(&c->mu);
      continue;
    }
    c->mappings++;
    e->mapping = 1;
    pthread_mutex_unlock(&c->mu);
    char name[64];
    file_name(e, name, sizeof name);
    void *m = MAP_FAILED;
    int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      m = mmap(NULL, e->size, PROT_READ, MAP_SHARED, fd, 0);
      close(fd);
    }
    if (m == MAP_FAILED) rc = quire__errno("cache: map %s/%s", c->dir, name);
    pthread_mutex_lock(&c->mu);
    e->mapping = 0;
    if (rc) {
      c->mappings--;
      if (!e->doomed) { /* the file is gone or unreadable: forget it */
        lru_unlink(c, e);
        table_remove(c, e);
        e->doomed = 1;
        c->entries--;
      }
    } else {
      e->map = m;
    }
    pthread_cond_broadcast(&c->changed);
    break;
  }
  if (rc) {
    unpin_locked(c, e, &grave);
  } else {
    out->cache = c;
    out->entry = e;
    out->data = e->map;
    out->len = e->size;
  }
  pthread_mutex_unlock(&c->mu);
  bury(c, grave, 1);
  return rc;
}

int ps__cache_has(ps_cache *c, const quire_gid *sid) {
  pthread_mutex_lock(&c->mu);
  struct entry *e = find(c, sid);
  int has = e && e->state == E_READY;
  pthread_mutex_unlock(&c->mu);
  return has;
}

void ps__cache_unpin(ps_cache_pin *pin) {
  if (!pin || !pin->entry) return;
  ps_cache *c = pin->cache;
  struct entry *grave = NULL;
  pthread_mutex_lock(&c->mu);
  unpin_locked(c, pin->entry, &grave);
  pthread_mutex_unlock(&c->mu);
  bury(c, grave, 1);
  pin->entry = NULL;
  pin->data = NULL;
  pin->len = 0;
}

int ps__cache_invalidate(ps_cache *c, const quire_gid *sid) {
  struct entry *grave = NULL;
  pthread_mutex_lock(&c->mu);
  struct entry *e = find(c, sid);
  if (!e || e->state != E_READY) {
    pthread_mutex_unlock(&c->mu);
    return QUIRE_ENOTFOUND;
  }
  lru_unlink(c, e);
  table_remove(c, e);
  e->doomed = 1;
  c->entries--;
  if (e->pins == 0 && !e->mapping) retire(c, e, &grave);
  pthread_mutex_unlock(&c->mu);
  bury(c, grave, 1);
  return 0;
}

void ps__cache_stats(ps_cache *c, ps_cache_stats *out) {
  pthread_mutex_lock(&c->mu);
  out->bytes = c->bytes;
  out->budget = c->o.budget_bytes;
  out->entries = c->entries;
  out->pinned = c->pinned_entries;
  out->mappings = c->mappings;
  out->hits = c->hits;
  out->misses = c->misses;
  out->evictions = c->evictions;
  out->unmaps = c->unmaps;
  out->dropped_on_open = c->dropped_on_open;
  pthread_mutex_unlock(&c->mu);
}
