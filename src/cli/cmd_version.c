/* cli/cmd_version.c — `quire version`. */
#include "cli/cli.h"
#include "quire/common.h"

#include <getopt.h>

const char quire_cmd_version_summary[] = "print the version and build revision";

int quire_cmd_version(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    printf("usage: quire version\n\nPrints quire's version and the git revision it was built from.\n");
    return CLI_EXIT_OK;
  }
  if (argc > 1) return cli_usage_error("version", "unexpected argument '%s'", argv[1]);
  printf("quire %s (%s)\n", quire_version(), quire_build_revision());
  return CLI_EXIT_OK;
}
