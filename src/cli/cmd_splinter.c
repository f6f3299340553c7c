/* cli/cmd_splinter.c — `quire splinter dump|make`: inspect splinter encodings. */
#include "cli/cli.h"
#include "quire/splinter.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

const char quire_cmd_splinter_summary[] = "dump or make splinter encodings (page sets)";

static void help(void) {
  printf("usage: quire splinter dump [--no-values] FILE|HEX\n"
         "       quire splinter make VALUE|LO-HI ...\n"
         "\n"
         "dump  validates an encoding (a file, or hex digits on the command line)\n"
         "      and prints its footer, node tree and elements (as ranges).\n"
         "      Exits 1 if the bytes are not a valid splinter.\n"
         "make  prints the hex encoding of the set of the given values and ranges.\n");
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Hex digits (spaces allowed) into a new buffer; 0 or -1 if not hex. */
static int parse_hex(const char *s, uint8_t **out, size_t *len) {
  size_t n = strlen(s);
  uint8_t *b = malloc(n / 2 + 1);
  if (!b) return -1;
  size_t k = 0;
  int hi = -1;
  for (size_t i = 0; i < n; i++) {
    if (isspace((unsigned char)s[i])) continue;
    int v = hexval(s[i]);
    if (v < 0) {
      free(b);
      return -1;
    }
    if (hi < 0)
      hi = v;
    else
      b[k++] = (uint8_t)(hi << 4 | v), hi = -1;
  }
  if (hi >= 0 || k == 0) {
    free(b);
    return -1;
  }
  *out = b;
  *len = k;
  return 0;
}

static int read_file(const char *path, uint8_t **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  size_t cap = 4096, n = 0;
  uint8_t *b = malloc(cap);
  while (b) {
    size_t got = fread(b + n, 1, cap - n, f);
    n += got;
    if (n < cap) break;
    uint8_t *nb = realloc(b, cap * 2);
    if (!nb) {
      free(b);
      b = NULL;
      break;
    }
    b = nb;
    cap *= 2;
  }
  int err = ferror(f);
  fclose(f);
  if (!b || err) {
    free(b);
    return -1;
  }
  *out = b;
  *len = n;
  return 0;
}

static int cmd_dump(int argc, char **argv) {
  int values = 1;
  const char *arg = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--no-values") == 0)
      values = 0;
    else if (argv[i][0] == '-' && argv[i][1])
      return cli_usage_error("splinter", "unknown option '%s'", argv[i]);
    else if (arg)
      return cli_usage_error("splinter", "unexpected argument '%s'", argv[i]);
    else
      arg = argv[i];
  }
  if (!arg) return cli_usage_error("splinter", "dump needs a file or hex bytes");
  uint8_t *bytes = NULL;
  size_t len = 0;
  if (read_file(arg, &bytes, &len) != 0 && parse_hex(arg, &bytes, &len) != 0) {
    fprintf(stderr, "quire splinter: '%s' is neither a readable file nor hex bytes\n", arg);
    return CLI_EXIT_FAIL;
  }
  int rc = splinter_dump(bytes, len, stdout, values);
  free(bytes);
  return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int cmd_make(int argc, char **argv) {
  if (argc < 2) return cli_usage_error("splinter", "make needs values");
  splinter_t *s;
  int rc = splinter_new(&s);
  if (rc) return cli_fail("splinter", rc, "allocating");
  for (int i = 1; i < argc; i++) {
    unsigned long long lo, hi;
    char *dash = strchr(argv[i], '-');
    if (dash) {
      *dash = 0;
      int bad = cli_parse_u64(argv[i], &lo) || cli_parse_u64(dash + 1, &hi);
      *dash = '-';
      if (bad || lo > hi || hi > UINT32_MAX) {
        splinter_free(s);
        return cli_usage_error("splinter", "bad range '%s'", argv[i]);
      }
    } else {
      if (cli_parse_u64(argv[i], &lo) || lo > UINT32_MAX) {
        splinter_free(s);
        return cli_usage_error("splinter", "bad value '%s'", argv[i]);
      }
      hi = lo;
    }
    rc = splinter_insert_range(s, (uint32_t)lo, (uint32_t)hi);
    if (rc) {
      splinter_free(s);
      return cli_fail("splinter", rc, "inserting");
    }
  }
  uint8_t *out;
  size_t len;
  rc = splinter_serialize_alloc(s, &out, &len);
  splinter_free(s);
  if (rc) return cli_fail("splinter", rc, "serializing");
  for (size_t i = 0; i < len; i++) printf("%02x", out[i]);
  printf("\n");
  splinter_bytes_free(out);
  return CLI_EXIT_OK;
}

int quire_cmd_splinter(int argc, char **argv) {
  static const struct cli_sub subs[] = {
      {"dump", cmd_dump},
      {"make", cmd_make},
      {NULL, NULL},
  };
  return cli_dispatch("splinter", argc, argv, subs, help);
}
