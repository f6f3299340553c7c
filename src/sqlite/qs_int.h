/*
 * sqlite/qs_int.h — the quire SQLite extension's internals (DESIGN.md §12,
 * docs/SQLITE.md is the user's side).
 *
 * Files: ext.c (entry points, the SQLite API pointer, registration, error
 * mapping), registry.c (configuration from the environment and URI
 * parameters; one quire_client per data directory and one shared volume
 * record per open volume in the process, both refcounted), vfs.c (the VFS
 * methods and the in-memory files used for journals and temp files),
 * file.c (a main database file: locks onto readers and writers, the byte
 * offset mapping onto 4 KiB volume pages, commits), pragma.c (PRAGMA
 * quire_*), vtab.c (the quire_stats virtual table).
 *
 * Every file calls SQLite through the API routines pointer (sqlite3ext.h),
 * so the same objects work when loaded into a host with its own SQLite
 * (sqlite3_load_extension) and when linked (quire_sqlite_register).
 *
 * Lock order: qs__mu (the registry and every volume record's write owner)
 * is taken without holding any quire lock, and no quire call that may wait
 * on the network is made while holding it.
 */
#ifndef QUIRE_SQLITE_QS_INT_H
#define QUIRE_SQLITE_QS_INT_H

#include <pthread.h>
#include <stdint.h>

#include <sqlite3ext.h>

#include "quire/quire.h"

SQLITE_EXTENSION_INIT3

#define QS_VFS_NAME "quire"
#define QS_MAX_NAME 255

/* ---- configuration (registry.c) ------------------------------------------ */

struct qs_config {
  char data_dir[4096];
  char metastore[1024]; /* "" = local only */
  char pagestore[1024];
  char token[1024];
  int autosync;
  int sync_mode;             /* enum quire_sync_mode */
  unsigned fetch_timeout_ms; /* 0 = client default */
  unsigned close_push_ms;    /* push at the last close (autosync only); 0 = never */
};

/* Fills c from the environment, then from the URI parameters of zName (the
 * name SQLite passed to xOpen; NULL for none). On a bad value returns
 * SQLITE_ERROR with a message in err. */
int qs__config_load(struct qs_config *c, const char *zName, char *err, size_t errlen);

/* ---- shared records (registry.c) ------------------------------------------- */

struct qs_file;

struct qs_client {
  struct qs_client *next;
  struct qs_config cfg; /* data_dir is the canonical path */
  quire_client *c;
  unsigned refs; /* open volume records (qs__mu) */
};

/* One per open volume in the process, shared by every connection on it. */
struct qs_vol {
  struct qs_vol *next;
  struct qs_client *cl;
  quire_volume *v;
  unsigned refs;        /* open main-database files (qs__mu) */
  const void *owner;    /* the holder of the write lock: a qs_file or a pragma (qs__mu) */
  int in_conflict;      /* cached volume state (qs__mu) */
  uint64_t state_epoch; /* conflicts + resets + forks when in_conflict was computed */
  char last_error[512]; /* the last failed VFS call on this volume (qs__mu) */
};

extern pthread_mutex_t qs__mu;

/* Opens (or shares) the client of cfg->data_dir and the volume name (a
 * local name or a volume id; vid, if not NULL, binds the name to it first).
 * flags: QUIRE_CREATE, QUIRE_READONLY. On failure returns an SQLite code
 * and a message in err. */
int qs__vol_acquire(const struct qs_config *cfg, const char *name, const char *vid, unsigned flags,
                    struct qs_vol **out, char *err, size_t errlen);
void qs__vol_release(struct qs_vol *vol);

/* Takes the write lock of vol for owner: SQLITE_OK, or SQLITE_BUSY if
 * another owner holds it. */
int qs__vol_lock(struct qs_vol *vol, const void *owner);
void qs__vol_unlock(struct qs_vol *vol, const void *owner);
/* 1 if someone in this process holds the write lock. */
int qs__vol_locked(struct qs_vol *vol);
/* 1 if the volume is in state "conflict" (cheap unless counters moved). */
int qs__vol_in_conflict(struct qs_vol *vol);
/* Records msg as the volume's last error. */
void qs__vol_note(struct qs_vol *vol, const char *msg);

/* ---- the main database file (file.c) ------------------------------------- */

struct qs_file {
  sqlite3_file base; /* first: SQLite sees this */
  struct qs_vol *vol;
  int lock;             /* SQLITE_LOCK_* as SQLite sees it */
  int readonly;         /* opened read-only */
  int immutable;        /* URI immutable=1: one snapshot for the handle's life */
  quire_reader *reader; /* the snapshot while SHARED or more */
  quire_reader *pinned; /* immutable: the handle's snapshot */
  quire_writer *writer; /* pending changes of the write transaction */
  int write_locked;     /* this handle owns vol->owner */
  quire_lsn cache_lsn;  /* the snapshot SQLite's page cache reflects */
  quire_lsn lock_lsn;   /* the snapshot of the current lock */
  int cache_known;
  int check_version; /* the next 16-byte read at 24 must show a change */
  uint8_t vers[16];  /* bytes 24..39 of page 1 as SQLite last read or wrote them */
  int vers_known;
  int committed;    /* a commit happened under this write lock */
  int doomed;       /* a commit failed: writes are dropped until unlock */
  uint64_t nwrites; /* writes buffered in writer */
  /* One partially written volume page, so that a run of small SQLite
   * pages becomes one write of the volume page (writer only). */
  quire_pageidx stage_idx; /* 0: none */
  int stage_dirty;
  uint8_t *stage;
  char name[QS_MAX_NAME + 1];
};

int qs__file_open(struct qs_file *f, const char *name, const struct qs_config *cfg, const char *vid,
                  int flags, char *err, size_t errlen);
extern const sqlite3_io_methods qs__file_methods;

/* Reads page 1's first 100 bytes at the file's current view into hdr. */
int qs__file_header(struct qs_file *f, uint8_t hdr[100]);

/* ---- in-memory files (vfs.c) --------------------------------------------- */

int qs__memfile_open(sqlite3_file *file);
extern const sqlite3_io_methods qs__memfile_methods;

/* ---- errors and logging (ext.c) ------------------------------------------- */

/* The SQLite code for quire error rc in an I/O method (io_code is the
 * SQLITE_IOERR_* of the operation). */
int qs__sqlite_code(int rc, int io_code);
/* Logs (sqlite3_log and the quire log) and records on the volume:
 * "<what>: <strerror(rc)>: <quire_errmsg()>". Returns code. */
int qs__fail(struct qs_vol *vol, int code, int rc, const char *what);
/* The VFS everything not about files is delegated to (the default VFS at
 * registration, never quire itself). */
extern sqlite3_vfs *qs__base_vfs;

/* ---- pragmas and the virtual table --------------------------------------- */

/* SQLITE_FCNTL_PRAGMA: SQLITE_NOTFOUND for a pragma that is not ours. */
int qs__pragma(struct qs_file *f, char **args);
int qs__vtab_register(sqlite3 *db);

#endif
