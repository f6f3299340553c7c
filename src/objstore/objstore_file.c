/*
 * objstore/objstore_file.c — `file:///dir`: the embedded default store, one
 * file per key under a root directory (key "a/b/c" is the file dir/a/b/c).
 *
 * Publishing is atomic and durable (DESIGN.md §7.2):
 *   1. the bytes go to an unnamed file in the key's directory (O_TMPFILE);
 *      where that is unavailable (or with ?tmpfile=0) to a named temporary
 *      file ".tmp-<pid>-<n>-<rand>" in the same directory;
 *   2. fsync(file);
 *   3. publish: put_if_absent links the file to the key with linkat() (via
 *      /proc/self/fd for an unnamed file), which fails with EEXIST if the key
 *      exists, so racing creators — threads or processes — get exactly one
 *      winner; put links the unnamed file to a temporary name and rename()s
 *      it over the key;
 *   4. fsync(directory). New directories are fsync'd into their parents.
 * A crash leaves the key absent or complete. Named temporary files left by a
 * crash start with '.', which no valid key component does, so list() never
 * reports them. ?fsync=0 skips steps 2 and 4 (tests and benchmarks only).
 *
 * The store keeps no state besides the root directory descriptor, so a
 * handle is safe to share between threads.
 */
#include "objstore/objstore_int.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_store {
  int rootfd;
  int do_fsync;
  int use_tmpfile; /* O_TMPFILE + linkat via /proc/self/fd works here */
  _Atomic uint64_t tmp_counter;
};

/* ---- helpers -------------------------------------------------------------- */

/* The directory part of key ("" for a top-level key) into dir[cap]. */
static void key_dir(const char *key, char *dir, size_t cap) {
  const char *slash = strrchr(key, '/');
  size_t n = slash ? (size_t)(slash - key) : 0;
  if (n >= cap) n = cap - 1;
  memcpy(dir, key, n);
  dir[n] = 0;
}

static int fsync_dir(struct file_store *fs, const char *dir) {
  if (!fs->do_fsync) return 0;
  int fd = openat(fs->rootfd, *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return quire__errno("file: open directory '%s' for fsync", dir);
  int rc = 0;
  if (fsync(fd) != 0) rc = quire__errno("file: fsync directory '%s'", dir);
  close(fd);
  return rc;
}

/* mkdir -p of dir below the root; fsyncs each parent of a new directory. */
static int make_dirs(struct file_store *fs, const char *dir) {
  if (!*dir) return 0;
  char path[QUIRE_OBJSTORE_KEY_MAX + 1];
  size_t n = strlen(dir);
  memcpy(path, dir, n + 1);
  for (size_t i = 0; i <= n; i++) {
    if (path[i] != '/' && path[i] != 0) continue;
    char saved = path[i];
    path[i] = 0;
    if (mkdirat(fs->rootfd, path, 0700) == 0) {
      char parent[QUIRE_OBJSTORE_KEY_MAX + 1];
      key_dir(path, parent, sizeof parent);
      int rc = fsync_dir(fs, parent);
      if (rc) return rc;
    } else if (errno != EEXIST) {
      int e = errno;
      path[i] = saved;
      if (e == ENOTDIR) return quire__err(QUIRE_EINVAL, "file: key directory '%s' collides with a key", dir);
      errno = e;
      return quire__errno("file: mkdir '%s'", dir);
    }
    path[i] = saved;
  }
  return 0;
}

static void tmp_name(struct file_store *fs, const char *dir, char *out, size_t cap) {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = quire__mono_ns();
  uint64_t n = atomic_fetch_add(&fs->tmp_counter, 1);
  snprintf(out, cap, "%s%s.tmp-%ld-%llu-%016llx", dir, *dir ? "/" : "", (long)getpid(), (unsigned long long)n,
           (unsigned long long)r);
}

static int map_open_errno(const char *what, const char *key) {
  if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR)
    return quire__err(QUIRE_ENOTFOUND, "file: no object '%s'", key);
  return quire__errno("file: %s '%s'", what, key);
}

/* ---- the write path, shared by put and the streaming writer ---------------- */

struct objstore_wimpl {
  struct file_store *fs;
  char key[QUIRE_OBJSTORE_KEY_MAX + 1];
  char dir[QUIRE_OBJSTORE_KEY_MAX + 1];
  char tmp[QUIRE_OBJSTORE_KEY_MAX + 96]; /* named temp file (fallback mode) */
  int flags;
  int fd;
};

static void fw_abort(struct objstore_wimpl *w) {
  if (w->fd >= 0) close(w->fd);
  if (w->tmp[0]) unlinkat(w->fs->rootfd, w->tmp, 0);
  quire__free(w);
}

static int fw_begin(struct file_store *fs, const char *key, int flags, struct objstore_wimpl **out) {
  struct objstore_wimpl *w = quire__calloc(1, sizeof *w);
  if (!w) return QUIRE_ENOMEM;
  w->fs = fs;
  w->flags = flags;
  w->fd = -1;
  snprintf(w->key, sizeof w->key, "%s", key);
  key_dir(key, w->dir, sizeof w->dir);
  int rc = make_dirs(fs, w->dir);
  if (rc) goto fail;
  if (fs->use_tmpfile) {
    w->fd = openat(fs->rootfd, *w->dir ? w->dir : ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (w->fd < 0) {
      rc = quire__errno("file: O_TMPFILE in '%s'", w->dir);
      goto fail;
    }
  } else {
    tmp_name(fs, w->dir, w->tmp, sizeof w->tmp);
    w->fd = openat(fs->rootfd, w->tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (w->fd < 0) {
      rc = quire__errno("file: create '%s'", w->tmp);
      w->tmp[0] = 0;
      goto fail;
    }
  }
  *out = w;
  return 0;
fail:
  fw_abort(w);
  return rc;
}

static int fw_write(struct objstore_wimpl *w, const void *data, size_t len) {
  return objstore__write_all(w->fd, data, len);
}

static int publish_errno(struct objstore_wimpl *w, const char *what) {
  if (errno == EEXIST) return quire__err(QUIRE_EEXIST, "file: '%s' exists", w->key);
  if (errno == EISDIR || errno == ENOTDIR || errno == ENOTEMPTY)
    return quire__err(QUIRE_EINVAL, "file: key '%s' collides with a directory of keys", w->key);
  return quire__errno("file: %s '%s'", what, w->key);
}

static int fw_commit(struct objstore_wimpl *w) {
  struct file_store *fs = w->fs;
  int rc = 0;
  if (fs->do_fsync && fsync(w->fd) != 0) {
    rc = quire__errno("file: fsync '%s'", w->key);
    goto out;
  }
  if (fs->use_tmpfile) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->fd);
    if (w->flags & QUIRE_OBJSTORE_IF_ABSENT) {
      if (linkat(AT_FDCWD, proc, fs->rootfd, w->key, AT_SYMLINK_FOLLOW) != 0) {
        rc = publish_errno(w, "link");
        goto out;
      }
    } else {
      tmp_name(fs, w->dir, w->tmp, sizeof w->tmp);
      if (linkat(AT_FDCWD, proc, fs->rootfd, w->tmp, AT_SYMLINK_FOLLOW) != 0) {
        w->tmp[0] = 0;
        rc = publish_errno(w, "link");
        goto out;
      }
      if (renameat(fs->rootfd, w->tmp, fs->rootfd, w->key) != 0) {
        rc = publish_errno(w, "rename");
        goto out;
      }
      w->tmp[0] = 0;
    }
  } else if (w->flags & QUIRE_OBJSTORE_IF_ABSENT) {
    if (linkat(fs->rootfd, w->tmp, fs->rootfd, w->key, 0) != 0) {
      rc = publish_errno(w, "link");
      goto out;
    }
    /* the temp name is removed by fw_abort below */
  } else {
    if (renameat(fs->rootfd, w->tmp, fs->rootfd, w->key) != 0) {
      rc = publish_errno(w, "rename");
      goto out;
    }
    w->tmp[0] = 0;
  }
  rc = fsync_dir(fs, w->dir);
out:
  fw_abort(w);
  return rc;
}

static const struct objstore_writer_ops file_writer_ops = {fw_write, fw_commit, fw_abort};

static int file_writer_open(quire_objstore *s, const char *key, int flags, struct objstore_wimpl **out,
                            const struct objstore_writer_ops **ops) {
  *ops = &file_writer_ops;
  return fw_begin(s->impl, key, flags, out);
}

static int file_put(quire_objstore *s, const char *key, const void *data, size_t len, int flags) {
  struct objstore_wimpl *w;
  int rc = fw_begin(s->impl, key, flags, &w);
  if (rc) return rc;
  rc = objstore__write_all(w->fd, data, len);
  if (rc) {
    fw_abort(w);
    return rc;
  }
  return fw_commit(w);
}

/* ---- reads ---------------------------------------------------------------- */

static int open_regular(struct file_store *fs, const char *key, int *fd_out, struct stat *st) {
  int fd = openat(fs->rootfd, key, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return map_open_errno("open", key);
  if (fstat(fd, st) != 0) {
    int rc = quire__errno("file: stat '%s'", key);
    close(fd);
    return rc;
  }
  if (!S_ISREG(st->st_mode)) {
    close(fd);
    return quire__err(QUIRE_ENOTFOUND, "file: '%s' is not an object", key);
  }
  *fd_out = fd;
  return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *got) {
  uint8_t *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return quire__errno("file: read");
    }
    if (n == 0) break;
    done += (size_t)n;
  }
  *got = done;
  return 0;
}

static int file_get(quire_objstore *s, const char *key, uint8_t **data, size_t *len) {
  int fd;
  struct stat st;
  int rc = open_regular(s->impl, key, &fd, &st);
  if (rc) return rc;
  size_t size = (size_t)st.st_size;
  uint8_t *buf = quire__malloc(size);
  if (!buf) {
    close(fd);
    return QUIRE_ENOMEM;
  }
  size_t got;
  rc = pread_all(fd, buf, size, 0, &got);
  close(fd);
  if (!rc && got != size) rc = quire__err(QUIRE_EIO, "file: '%s' shrank while being read", key);
  if (rc) {
    quire__free(buf);
    return rc;
  }
  *data = buf;
  *len = size;
  return 0;
}

static int file_get_range(quire_objstore *s, const char *key, uint64_t off, size_t len, void *buf,
                          size_t *got) {
  int fd;
  struct stat st;
  int rc = open_regular(s->impl, key, &fd, &st);
  if (rc) return rc;
  if (off > (uint64_t)st.st_size) {
    close(fd);
    return quire__err(QUIRE_ERANGE, "file: offset %llu past the end of '%s' (%lld bytes)",
                      (unsigned long long)off, key, (long long)st.st_size);
  }
  size_t want = QUIRE_MIN(len, (size_t)((uint64_t)st.st_size - off));
  rc = pread_all(fd, buf, want, off, got);
  close(fd);
  return rc;
}

static int file_head(quire_objstore *s, const char *key, quire_objstore_info *info) {
  struct file_store *fs = s->impl;
  struct stat st;
  if (fstatat(fs->rootfd, key, &st, 0) != 0) return map_open_errno("stat", key);
  if (!S_ISREG(st.st_mode)) return quire__err(QUIRE_ENOTFOUND, "file: '%s' is not an object", key);
  info->size = (uint64_t)st.st_size;
  snprintf(info->etag, sizeof info->etag, "%llx-%llx-%llx.%09ld", (unsigned long long)st.st_ino,
           (unsigned long long)st.st_size, (unsigned long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  return 0;
}

static int file_del(quire_objstore *s, const char *key, int *found) {
  struct file_store *fs = s->impl;
  if (unlinkat(fs->rootfd, key, 0) != 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR) {
      *found = 0;
      return 0;
    }
    return quire__errno("file: unlink '%s'", key);
  }
  *found = 1;
  char dir[QUIRE_OBJSTORE_KEY_MAX + 1];
  key_dir(key, dir, sizeof dir);
  return fsync_dir(fs, dir);
}

/* ---- list ----------------------------------------------------------------- */

struct walk {
  struct file_store *fs;
  const char *prefix, *start_after;
  size_t plen;
  quire_objstore_list *out;
};

/* Could a key below directory path (no trailing '/') match the prefix? */
static int dir_may_match(const char *path, size_t n, const char *prefix, size_t plen) {
  /* keys below look like "path/..."; they match if one is a prefix of the other */
  size_t m = QUIRE_MIN(n, plen);
  if (strncmp(path, prefix, m) != 0) return 0;
  return n >= plen || prefix[n] == '/';
}

static int walk_dir(struct walk *wk, char *path, size_t n) {
  int fd = openat(wk->fs->rootfd, n ? path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return 0;
    return quire__errno("file: open directory '%s'", path);
  }
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return quire__errno("file: opendir '%s'", path);
  }
  int rc = 0;
  struct dirent *e;
  while (!rc && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue; /* ".", "..", temp files */
    size_t nl = strlen(e->d_name);
    if (n + 1 + nl > QUIRE_OBJSTORE_KEY_MAX) continue;
    size_t m = n;
    if (n) path[m++] = '/';
    memcpy(path + m, e->d_name, nl + 1);
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISDIR(st.st_mode)) {
        if (dir_may_match(path, m + nl, wk->prefix, wk->plen)) rc = walk_dir(wk, path, m + nl);
      } else if (S_ISREG(st.st_mode) && strncmp(path, wk->prefix, wk->plen) == 0 &&
                 strcmp(path, wk->start_after) > 0 && quire_objstore_key_check(path) == 0) {
        rc = objstore__list_push(wk->out, path, (uint64_t)st.st_size);
      }
    }
    path[n] = 0;
  }
  closedir(d);
  return rc;
}

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const quire_objstore_entry *)a)->key, ((const quire_objstore_entry *)b)->key);
}

static int file_list(quire_objstore *s, const char *prefix, const char *start_after, size_t limit,
                     quire_objstore_list *out) {
  struct walk wk = {s->impl, prefix, start_after, strlen(prefix), out};
  /* Start at the deepest directory the prefix names completely. */
  char path[QUIRE_OBJSTORE_KEY_MAX + 2];
  key_dir(prefix, path, sizeof path);
  int rc = walk_dir(&wk, path, strlen(path));
  if (rc) return rc;
  if (out->count) qsort(out->entries, out->count, sizeof *out->entries, entry_cmp);
  if (out->count > limit) {
    for (size_t i = limit; i < out->count; i++) quire__free(out->entries[i].key);
    out->count = limit;
    out->truncated = 1;
  }
  return 0;
}

/* ---- open / close --------------------------------------------------------- */

static void file_close(quire_objstore *s) {
  struct file_store *fs = s->impl;
  if (!fs) return;
  if (fs->rootfd >= 0) close(fs->rootfd);
  quire__free(fs);
  s->impl = NULL;
}

static const struct objstore_ops file_ops = {
    .scheme = "file",
    .put = file_put,
    .get = file_get,
    .get_range = file_get_range,
    .head = file_head,
    .list = file_list,
    .del = file_del,
    .writer_open = file_writer_open,
    .close = file_close,
};

/* mkdir -p of an absolute or relative filesystem path. */
static int mkdir_p(const char *path) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) return quire__err(QUIRE_EINVAL, "file: bad directory '%s'", path);
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    char saved = buf[i];
    buf[i] = 0;
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return quire__errno("file: mkdir '%s'", buf);
    buf[i] = saved;
  }
  return 0;
}

/* Does O_TMPFILE + linkat(/proc/self/fd) work in the root directory? */
static int tmpfile_works(struct file_store *fs) {
  int fd = openat(fs->rootfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  char proc[64], name[128];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  tmp_name(fs, "", name, sizeof name);
  int ok = linkat(AT_FDCWD, proc, fs->rootfd, name, AT_SYMLINK_FOLLOW) == 0;
  if (ok) unlinkat(fs->rootfd, name, 0);
  close(fd);
  return ok;
}

int objstore__file_open(quire_objstore *s, const char *location, struct objstore_params *p) {
  uint64_t do_fsync, tmpfile;
  int rc = objstore__param_u64(p, "fsync", 1, &do_fsync);
  if (!rc) rc = objstore__param_u64(p, "tmpfile", 1, &tmpfile);
  if (rc) return rc;
  if (!*location) return quire__err(QUIRE_EINVAL, "file: URL needs a directory (file:///path)");
  rc = mkdir_p(location);
  if (rc) return rc;
  struct file_store *fs = quire__calloc(1, sizeof *fs);
  if (!fs) return QUIRE_ENOMEM;
  fs->rootfd = open(location, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fs->rootfd < 0) {
    rc = quire__errno("file: open '%s'", location);
    quire__free(fs);
    return rc;
  }
  fs->do_fsync = do_fsync != 0;
  s->impl = fs;
  s->ops = &file_ops;
  fs->use_tmpfile = tmpfile && tmpfile_works(fs);
  return 0;
}
