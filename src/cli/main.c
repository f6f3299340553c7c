/*
 * cli/main.c — `quire`: one binary, many subcommands (see cli.h).
 */
#include "cli/cli.h"
#include "quire/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f, "usage: quire <command> [options]\n"
             "\n"
             "quire keeps volumes of 4 KiB pages in object storage and replicates\n"
             "them lazily to the programs that read them.\n"
             "\n"
             "commands:\n");
  for (const struct cli_command *c = cli_commands; c->name; c++)
    fprintf(f, "  %-12s %s\n", c->name, c->summary);
  fprintf(f, "\n"
             "Run 'quire <command> --help' for a command's options.\n"
             "Environment: QUIRE_LOG=error|warn|info|debug|trace sets the log level.\n");
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "quire %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see 'quire %s --help')\n", cmd);
  return CLI_EXIT_USAGE;
}

int cli_fail(const char *cmd, int rc, const char *what) {
  const char *detail = quire_errmsg();
  fprintf(stderr, "quire %s: %s: %s%s%s\n", cmd, what, quire_strerror(rc), *detail ? ": " : "", detail);
  return CLI_EXIT_FAIL;
}

int cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) return 0;
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
  }
  return 0;
}

int cli_dispatch(const char *cmd, int argc, char **argv, const struct cli_sub *subs, void (*help)(void)) {
  if (argc < 2 || cli_wants_help(argc, argv) || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "--help") == 0) {
    help();
    return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
  }
  for (const struct cli_sub *sc = subs; sc->name; sc++)
    if (strcmp(argv[1], sc->name) == 0) return sc->run(argc - 1, argv + 1);
  return cli_usage_error(cmd, "unknown subcommand '%s'", argv[1]);
}

int cli_parse_u64(const char *s, unsigned long long *out) {
  if (!s || !*s || *s == '-') return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) return -1;
  unsigned long long mul = 1;
  if (*end == 'k' || *end == 'K')
    mul = 1ull << 10, end++;
  else if (*end == 'm' || *end == 'M')
    mul = 1ull << 20, end++;
  else if (*end == 'g' || *end == 'G')
    mul = 1ull << 30, end++;
  if (*end) return -1;
  if (v > ~0ull / mul) return -1;
  *out = v * mul;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(name, "--version") == 0) name = "version";
  for (const struct cli_command *c = cli_commands; c->name; c++)
    if (strcmp(c->name, name) == 0) return c->run(argc - 1, argv + 1);
  fprintf(stderr, "quire: unknown command '%s' (see 'quire --help')\n", name);
  return CLI_EXIT_USAGE;
}
