/* cli/cmd_gid.c — `quire gid new|parse`: make and inspect identifiers. */
#include "cli/cli.h"
#include "quire/ids.h"

#include <getopt.h>
#include <string.h>
#include <time.h>

const char quire_cmd_gid_summary[] = "generate or parse ids (volume, segment, client, commit)";

static void help(void) {
  printf("usage: quire gid new [--type volume|segment|client|commit] [-n COUNT]\n"
         "       quire gid parse ID...\n"
         "\n"
         "new    prints COUNT (default 1) fresh ids of the type (default volume).\n"
         "parse  checks each 22-character id and prints its type, time and bytes;\n"
         "       exits 1 if any id is invalid.\n");
}

static int type_from_name(const char *s) {
  static const int types[] = {QUIRE_GID_VOLUME, QUIRE_GID_SEGMENT, QUIRE_GID_CLIENT, QUIRE_GID_COMMIT};
  for (size_t i = 0; i < 4; i++)
    if (strcmp(s, quire_gid_type_name(types[i])) == 0) return types[i];
  return 0;
}

static int gid_new(int argc, char **argv) {
  static const struct option opts[] = {
      {"type", required_argument, 0, 't'}, {"count", required_argument, 0, 'n'}, {0, 0, 0, 0}};
  int type = QUIRE_GID_VOLUME;
  unsigned long long count = 1;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":t:n:", opts, NULL)) != -1) {
    switch (c) {
    case 't':
      type = type_from_name(optarg);
      if (!type) return cli_usage_error("gid", "unknown type '%s'", optarg);
      break;
    case 'n':
      if (cli_parse_u64(optarg, &count) || count == 0 || count > 10000000)
        return cli_usage_error("gid", "bad count '%s'", optarg);
      break;
    case ':': return cli_usage_error("gid", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error("gid", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return cli_usage_error("gid", "unexpected argument '%s'", argv[optind]);
  for (unsigned long long i = 0; i < count; i++) {
    quire_gid g;
    int rc = quire_gid_new(type, &g);
    if (rc) return cli_fail("gid", rc, "generating an id");
    char text[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&g, text);
    puts(text);
  }
  return CLI_EXIT_OK;
}

static int gid_parse(int argc, char **argv) {
  if (argc < 2) return cli_usage_error("gid", "parse needs at least one id");
  int status = CLI_EXIT_OK;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-') return cli_usage_error("gid", "unknown option '%s'", argv[i]);
    quire_gid g;
    int rc = quire_gid_parse(argv[i], strlen(argv[i]), 0, &g);
    if (rc) {
      fprintf(stderr, "quire gid: '%s': %s\n", argv[i], quire_errmsg());
      status = CLI_EXIT_FAIL;
      continue;
    }
    uint64_t ms = quire_gid_time_ms(&g);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%s type=%s time=%s.%03uZ hex=", argv[i], quire_gid_type_name(quire_gid_type(&g)), when,
           (unsigned)(ms % 1000));
    for (int k = 0; k < QUIRE_GID_SIZE; k++) printf("%02x", g.b[k]);
    printf("\n");
  }
  return status;
}

int quire_cmd_gid(int argc, char **argv) {
  static const struct cli_sub subs[] = {
      {"new", gid_new},
      {"parse", gid_parse},
      {NULL, NULL},
  };
  return cli_dispatch("gid", argc, argv, subs, help);
}
