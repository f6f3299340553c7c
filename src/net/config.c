/*
 * net/config.c — flags, then QUIRE_* environment, then INI file (see config.h).
 */
#include "net/config.h"

#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/err.h"

static struct quire_cfg_opt *find(struct quire_cfg_opt *opts, size_t n, const char *name, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) return &opts[i];
  return NULL;
}

static int set(struct quire_cfg_opt *o, const char *v, const char *source) {
  char *copy = quire__strdup(v);
  if (!copy) return QUIRE_ENOMEM;
  quire__free(o->value);
  o->value = copy;
  o->source = source;
  return 0;
}

struct ini_ctx {
  struct quire_cfg_opt *opts;
  size_t n;
  int rc;
  char bad[160];
};

static int on_ini(void *user, const char *section, const char *key, const char *value) {
  struct ini_ctx *c = user;
  char name[64];
  size_t len = strlen(key);
  if (len >= sizeof name) len = sizeof name - 1;
  for (size_t i = 0; i < len; i++) name[i] = key[i] == '_' ? '-' : key[i];
  name[len] = '\0';
  struct quire_cfg_opt *o = find(c->opts, c->n, name, len);
  if (!o || strcmp(o->section, section) != 0 || strcmp(o->name, "config") == 0) {
    snprintf(c->bad, sizeof c->bad, "unknown setting [%s] %s", section, key);
    return 0;
  }
  /* Flags and environment win: only fill what they left unset. */
  if (o->source && (strcmp(o->source, "flag") == 0 || strcmp(o->source, "env") == 0)) return 1;
  if (set(o, value, "config")) {
    c->rc = QUIRE_ENOMEM;
    return 0;
  }
  return 1;
}

int quire__cfg_resolve(struct quire_cfg_opt *opts, size_t n, int argc, char **argv) {
  for (size_t i = 0; i < n; i++) {
    opts[i].value = NULL;
    opts[i].source = "unset";
  }
  /* Flags. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 || !a[2]) return quire__err(QUIRE_EINVAL, "unexpected argument '%s'", a);
    const char *eq = strchr(a + 2, '=');
    size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    struct quire_cfg_opt *o = find(opts, n, a + 2, len);
    if (!o) return quire__err(QUIRE_EINVAL, "unknown option '%s'", a);
    const char *v;
    if (eq)
      v = eq + 1;
    else if (o->boolean)
      v = "1";
    else if (i + 1 < argc)
      v = argv[++i];
    else
      return quire__err(QUIRE_EINVAL, "option '--%s' needs a value", o->name);
    int rc = set(o, v, "flag");
    if (rc) return rc;
  }
  /* Environment, for what flags left unset. */
  for (size_t i = 0; i < n; i++) {
    if (strcmp(opts[i].source, "flag") == 0 || !opts[i].env) continue;
    const char *v = getenv(opts[i].env);
    if (v && *v) {
      int rc = set(&opts[i], v, "env");
      if (rc) return rc;
    }
  }
  /* The config file. */
  struct quire_cfg_opt *cfg = find(opts, n, "config", 6);
  if (cfg && cfg->value) {
    struct ini_ctx c = {opts, n, 0, ""};
    int line = ini_parse(cfg->value, on_ini, &c);
    if (c.rc) return c.rc;
    if (line < 0) return quire__err(QUIRE_EINVAL, "cannot read config file %s", cfg->value);
    if (line > 0)
      return quire__err(QUIRE_EINVAL, "config file %s, line %d: %s", cfg->value, line,
                        c.bad[0] ? c.bad : "syntax error");
  }
  /* Defaults. */
  for (size_t i = 0; i < n; i++) {
    if (opts[i].value || !opts[i].def) continue;
    int rc = set(&opts[i], opts[i].def, "default");
    if (rc) return rc;
  }
  return 0;
}

void quire__cfg_free(struct quire_cfg_opt *opts, size_t n) {
  for (size_t i = 0; i < n; i++) {
    quire__free(opts[i].value);
    opts[i].value = NULL;
  }
}

const char *quire__cfg_get(const struct quire_cfg_opt *opts, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(opts[i].name, name) == 0) return opts[i].value;
  return NULL;
}

int quire__cfg_true(const char *v) {
  return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
               strcasecmp(v, "on") == 0);
}

void quire__cfg_help(FILE *f, const struct quire_cfg_opt *opts, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const struct quire_cfg_opt *o = &opts[i];
    char key[64];
    snprintf(key, sizeof key, "%s", o->name);
    for (char *p = key; *p; p++)
      if (*p == '-') *p = '_';
    fprintf(f, "  --%s%s\n      %s\n", o->name, o->boolean ? "" : " VALUE", o->help);
    if (strcmp(o->name, "config") == 0)
      fprintf(f, "      env %s\n", o->env);
    else
      fprintf(f, "      env %s, config [%s] %s%s%s\n", o->env, o->section, key, o->def ? ", default " : "",
              o->def ? o->def : "");
  }
}
