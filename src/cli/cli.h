/*
 * cli/cli.h — the `quire` command's shared pieces.
 *
 * Each subcommand lives in src/cli/cmd_<name>.c and defines
 *   int quire_cmd_<name>(int argc, char **argv);   argv[0] is "<name>"
 *   const char quire_cmd_<name>_summary[];        one line for `quire --help`
 * CMake registers it; no other file changes. Exit codes: 0 success, 1 the
 * operation failed, 2 usage error (unknown flag, missing argument).
 */
#ifndef QUIRE_CLI_H
#define QUIRE_CLI_H

#include <stdio.h>

struct cli_command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
};
extern const struct cli_command cli_commands[];

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* Prints "quire <cmd>: <message>" and a hint to use --help; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "quire <cmd>: <what>: <strerror(rc)>[: <errmsg>]"; returns 1. */
int cli_fail(const char *cmd, int rc, const char *what);
/* 1 if argv[i] is -h/--help anywhere before a "--". */
int cli_wants_help(int argc, char **argv);
/* A command made of subcommands ("quire gid new"): sub->run gets argv from
 * the subcommand's name on. */
struct cli_sub {
  const char *name;
  int (*run)(int argc, char **argv);
};
/* Prints help and exits 0 for -h/--help anywhere, 2 when no subcommand is
 * given; runs the named subcommand; a usage error (2) for an unknown one. */
int cli_dispatch(const char *cmd, int argc, char **argv, const struct cli_sub *subs, void (*help)(void));

/* Parses a non-negative integer with an optional k/m/g (x1024) suffix. */
int cli_parse_u64(const char *s, unsigned long long *out);

#endif
