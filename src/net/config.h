/*
 * net/config.h — settings of the quire services from three layers: command
 * line flags override QUIRE_* environment variables, which override an
 * optional INI config file (libinih), which overrides built-in defaults.
 *
 * Each setting has a flag (--name VALUE, --name=VALUE, or just --name for a
 * boolean), an environment variable and an INI key (`name = value` under
 * `[section]`, with '-' in the name written as '_'). The config file is
 * named by --config FILE or QUIRE_CONFIG; an unknown key in it is an error,
 * so typos do not pass silently.
 */
#ifndef QUIRE_NET_CONFIG_H
#define QUIRE_NET_CONFIG_H

#include <stddef.h>
#include <stdio.h>

struct quire_cfg_opt {
  const char *name;    /* flag name without "--", e.g. "listen" */
  const char *env;     /* e.g. "QUIRE_METASTORE_LISTEN" */
  const char *section; /* INI section, e.g. "metastore" */
  const char *help;
  const char *def; /* default value text, or NULL for none */
  int boolean;     /* 1: a flag without a value ("1" when given) */
  /* resolved */
  char *value;        /* owned; NULL if unset and no default */
  const char *source; /* "flag", "env", "config", "default" or "unset" */
};

/* Resolves every option. On a usage problem (unknown flag, missing value,
 * unreadable or invalid config file) returns QUIRE_EINVAL with the reason in
 * quire_errmsg(). Positional arguments are an error. */
int quire__cfg_resolve(struct quire_cfg_opt *opts, size_t n, int argc, char **argv);
void quire__cfg_free(struct quire_cfg_opt *opts, size_t n);
/* The value of the option called name (NULL if unset). */
const char *quire__cfg_get(const struct quire_cfg_opt *opts, size_t n, const char *name);
/* 1 for "1", "true", "yes", "on" (any case). */
int quire__cfg_true(const char *v);
/* Prints one block per option: flag, env, INI key, default, help. */
void quire__cfg_help(FILE *f, const struct quire_cfg_opt *opts, size_t n);

#endif
