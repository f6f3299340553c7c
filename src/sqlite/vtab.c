/*
 * sqlite/vtab.c — the eponymous virtual table quire_stats: the counters of
 * DESIGN.md §11.5 as rows, so page cache and sync counters can be queried
 * with SQL:
 *
 *   SELECT * FROM quire_stats;                    -- the main database's volume
 *   SELECT value FROM quire_stats WHERE name = 'fetch_round_trips';
 *   SELECT * FROM quire_stats('aux');             -- an attached quire database
 *
 * Columns: name, value, scope ('volume': this volume's counters; 'client':
 * every volume of the data directory). The hidden column db picks the
 * schema (default main). A database that is not on a quire volume has no
 * rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite/qs_int.h"

enum { COL_NAME, COL_VALUE, COL_SCOPE, COL_DB };

struct row {
  char name[64];
  uint64_t value;
  const char *scope;
};

struct vt_cursor {
  sqlite3_vtab_cursor base;
  struct row *rows;
  size_t n, cap, at;
  int oom;
};

struct vt {
  sqlite3_vtab base;
  sqlite3 *db;
};

static int vt_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                      char **err) {
  (void)aux, (void)argc, (void)argv, (void)err;
  int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(name TEXT, value INTEGER, scope TEXT, db TEXT HIDDEN)");
  if (rc != SQLITE_OK) return rc;
  struct vt *t = sqlite3_malloc(sizeof *t);
  if (!t) return SQLITE_NOMEM;
  memset(t, 0, sizeof *t);
  t->db = db;
  *out = &t->base;
  return SQLITE_OK;
}

static int vt_disconnect(sqlite3_vtab *v) {
  sqlite3_free(v);
  return SQLITE_OK;
}

/* The only constraint used: db = ?. */
static int vt_best_index(sqlite3_vtab *v, sqlite3_index_info *info) {
  (void)v;
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    if (c->iColumn == COL_DB && c->op == SQLITE_INDEX_CONSTRAINT_EQ && c->usable) {
      info->aConstraintUsage[i].argvIndex = 1;
      info->aConstraintUsage[i].omit = 1;
      info->idxNum = 1;
      break;
    }
  }
  info->estimatedCost = 100;
  info->estimatedRows = 100;
  return SQLITE_OK;
}

static int vt_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out) {
  (void)v;
  struct vt_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}

static int vt_close(sqlite3_vtab_cursor *cur) {
  struct vt_cursor *c = (struct vt_cursor *)cur;
  free(c->rows);
  sqlite3_free(c);
  return SQLITE_OK;
}

struct add_ctx {
  struct vt_cursor *c;
  const char *scope;
};

static void add_row(void *ctx, const char *name, uint64_t value) {
  struct add_ctx *a = ctx;
  struct vt_cursor *c = a->c;
  if (c->oom) return;
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    struct row *r = realloc(c->rows, cap * sizeof *r);
    if (!r) {
      c->oom = 1;
      return;
    }
    c->rows = r;
    c->cap = cap;
  }
  struct row *r = &c->rows[c->n++];
  snprintf(r->name, sizeof r->name, "%s", name);
  r->value = value;
  r->scope = a->scope;
}

static int vt_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc,
                     sqlite3_value **argv) {
  (void)idx_str;
  struct vt_cursor *c = (struct vt_cursor *)cur;
  struct vt *t = (struct vt *)cur->pVtab;
  c->n = c->at = 0;
  const char *schema = idx_num == 1 && argc > 0 ? (const char *)sqlite3_value_text(argv[0]) : "main";
  if (!schema) schema = "main";
  sqlite3_file *file = NULL;
  if (sqlite3_file_control(t->db, schema, SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK || !file ||
      file->pMethods != &qs__file_methods)
    return SQLITE_OK;
  struct qs_file *f = (struct qs_file *)file;
  quire_stats s;
  quire_volume_stats(f->vol->v, &s);
  struct add_ctx a = {c, "volume"};
  quire_stats_foreach(&s, add_row, &a);
  quire_client_stats(f->vol->cl->c, &s);
  a.scope = "client";
  quire_stats_foreach(&s, add_row, &a);
  return c->oom ? SQLITE_NOMEM : SQLITE_OK;
}

static int vt_next(sqlite3_vtab_cursor *cur) {
  ((struct vt_cursor *)cur)->at++;
  return SQLITE_OK;
}

static int vt_eof(sqlite3_vtab_cursor *cur) {
  struct vt_cursor *c = (struct vt_cursor *)cur;
  return c->at >= c->n;
}

static int vt_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col) {
  struct vt_cursor *c = (struct vt_cursor *)cur;
  const struct row *r = &c->rows[c->at];
  switch (col) {
  case COL_NAME: sqlite3_result_text(ctx, r->name, -1, SQLITE_TRANSIENT); break;
  case COL_VALUE: sqlite3_result_int64(ctx, (sqlite3_int64)r->value); break;
  case COL_SCOPE: sqlite3_result_text(ctx, r->scope, -1, SQLITE_STATIC); break;
  default: sqlite3_result_null(ctx); break;
  }
  return SQLITE_OK;
}

static int vt_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = (sqlite3_int64)((struct vt_cursor *)cur)->at + 1;
  return SQLITE_OK;
}

static sqlite3_module module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous only */
    .xConnect = vt_connect,
    .xBestIndex = vt_best_index,
    .xDisconnect = vt_disconnect,
    .xDestroy = vt_disconnect,
    .xOpen = vt_open,
    .xClose = vt_close,
    .xFilter = vt_filter,
    .xNext = vt_next,
    .xEof = vt_eof,
    .xColumn = vt_column,
    .xRowid = vt_rowid,
};

int qs__vtab_register(sqlite3 *db) {
  return sqlite3_create_module_v2(db, "quire_stats", &module, NULL, NULL);
}
