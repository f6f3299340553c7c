/*
 * cli/cmd_sql.c — `quire sql NAME [SQL...]`: the user's own sqlite3 shell
 * with the quire extension loaded and the volume NAME open (docs/SQLITE.md).
 *
 * It execs `sqlite3 -cmd ".load EXT" -cmd ".open 'file:NAME?vfs=quire...'"
 * :memory: [SQL...]`: the extension is loaded into a first in-memory
 * connection (the shell opens one for .load), then .open switches to the
 * volume. Settings travel in the environment (QUIRE_DATA_DIR,
 * QUIRE_METASTORE, QUIRE_PAGESTORE, QUIRE_AUTOSYNC; the flags set them) and
 * in URI parameters (vid, mode). The extension is libquire_sqlite.so next
 * to this binary unless QUIRE_SQLITE_EXT names another; the shell is
 * `sqlite3` on PATH unless QUIRE_SQLITE3 names another.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "quire/common.h"

const char quire_cmd_sql_summary[] = "open a volume in your sqlite3 shell with the quire extension loaded";

static void help(void) {
  printf("usage: quire sql [options] NAME [SQL...]\n"
         "\n"
         "Runs the sqlite3 shell on volume NAME (a local name, or a volume id) through\n"
         "the quire SQLite extension. Each SQL argument runs in turn and the shell\n"
         "exits; with none the shell is interactive. An unknown NAME is created\n"
         "(unless --readonly).\n"
         "\n"
         "options:\n"
         "  --data DIR         client data directory (env QUIRE_DATA_DIR,\n"
         "                     default ~/.local/share/quire)\n"
         "  --metastore URL    (env QUIRE_METASTORE, default http://127.0.0.1:3001;\n"
         "                     'none' for local only)\n"
         "  --pagestore URL    (env QUIRE_PAGESTORE, default http://127.0.0.1:3002)\n"
         "  --vid VID          bind NAME to this existing volume id first\n"
         "  --readonly         open read-only (mode=ro)\n"
         "  --no-autosync      no background push and pull (env QUIRE_AUTOSYNC=0)\n"
         "  --print            print the sqlite3 command instead of running it\n"
         "\n"
         "Environment: QUIRE_SQLITE3 (the shell, default sqlite3 on PATH),\n"
         "QUIRE_SQLITE_EXT (the extension, default libquire_sqlite.so next to quire).\n");
}

/* Appends s to out (cap bytes) percent-encoded for the path of a URI. */
static int uri_escape(char *out, size_t cap, const char *s) {
  size_t n = strlen(out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    int plain =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c);
    int w = plain ? snprintf(out + n, cap - n, "%c", c) : snprintf(out + n, cap - n, "%%%02X", c);
    if (w < 0 || (size_t)w >= cap - n) return -1;
    n += (size_t)w;
  }
  return 0;
}

/* Prints s as one POSIX shell word. */
static void print_quoted(const char *s) {
  if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=") == strlen(s)) {
    fputs(s, stdout);
    return;
  }
  putchar('\'');
  for (; *s; s++) {
    if (*s == '\'') fputs("'\\''", stdout);
    else putchar(*s);
  }
  putchar('\'');
}

/* libquire_sqlite.so beside /proc/self/exe, or QUIRE_SQLITE_EXT. */
static int find_extension(char *out, size_t cap) {
  const char *env = getenv("QUIRE_SQLITE_EXT");
  if (env && *env) {
    snprintf(out, cap, "%s", env);
    return access(out, R_OK);
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return -1;
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (!slash) return -1;
  *slash = '\0';
  if ((size_t)snprintf(out, cap, "%s/libquire_sqlite.so", self) >= cap) return -1;
  return access(out, R_OK);
}

int quire_cmd_sql(int argc, char **argv) {
  static const struct option longopts[] = {{"data", required_argument, NULL, 'd'},
                                           {"metastore", required_argument, NULL, 'm'},
                                           {"pagestore", required_argument, NULL, 'p'},
                                           {"vid", required_argument, NULL, 'v'},
                                           {"readonly", no_argument, NULL, 'r'},
                                           {"no-autosync", no_argument, NULL, 'n'},
                                           {"print", no_argument, NULL, 'P'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  const char *vid = NULL;
  int readonly = 0, print = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
    switch (c) {
    case 'd': setenv("QUIRE_DATA_DIR", optarg, 1); break;
    case 'm': setenv("QUIRE_METASTORE", optarg, 1); break;
    case 'p': setenv("QUIRE_PAGESTORE", optarg, 1); break;
    case 'v': vid = optarg; break;
    case 'r': readonly = 1; break;
    case 'n': setenv("QUIRE_AUTOSYNC", "0", 1); break;
    case 'P': print = 1; break;
    case 'h': help(); return CLI_EXIT_OK;
    default: return cli_usage_error("sql", "unknown option");
    }
  }
  if (optind >= argc) return cli_usage_error("sql", "give a volume NAME");
  const char *name = argv[optind++];
  if (!*name || strlen(name) > 255) return cli_usage_error("sql", "a volume name is 1..255 bytes");
  if (name[0] == '/' || strncmp(name, "./", 2) == 0 || strncmp(name, "../", 3) == 0)
    return cli_usage_error("sql", "'%s' is a path; a volume name does not start with /, ./ or ../", name);
  char ext[PATH_MAX + 16], load[PATH_MAX + 32], open_cmd[2048], uri[1600] = "file:";
  if (find_extension(ext, sizeof ext) != 0) {
    fprintf(stderr, "quire sql: cannot find the extension %s (build it with make, or set QUIRE_SQLITE_EXT)\n",
            ext);
    return CLI_EXIT_FAIL;
  }
  if (strchr(ext, '\'')) {
    fprintf(stderr, "quire sql: the extension path %s contains a quote\n", ext);
    return CLI_EXIT_FAIL;
  }
  if (uri_escape(uri, sizeof uri, name) != 0) return cli_usage_error("sql", "volume name too long");
  size_t n = strlen(uri);
  snprintf(uri + n, sizeof uri - n, "?vfs=quire%s%s%s", vid ? "&vid=" : "", vid ? vid : "",
           readonly ? "&mode=ro" : "");
  if (vid && strspn(vid, "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz") != strlen(vid))
    return cli_usage_error("sql", "--vid %s is not a volume id", vid);
  snprintf(load, sizeof load, ".load '%s'", ext);
  snprintf(open_cmd, sizeof open_cmd, ".open '%s'", uri);
  const char *shell = getenv("QUIRE_SQLITE3");
  if (!shell || !*shell) shell = "sqlite3";
  int nsql = argc - optind;
  char **args = calloc((size_t)nsql + 8, sizeof *args);
  if (!args) return CLI_EXIT_FAIL;
  int k = 0;
  args[k++] = (char *)shell;
  args[k++] = "-cmd";
  args[k++] = load;
  args[k++] = "-cmd";
  args[k++] = open_cmd;
  args[k++] = ":memory:";
  for (int i = 0; i < nsql; i++) args[k++] = argv[optind + i];
  args[k] = NULL;
  if (print) {
    for (int i = 0; i < k; i++) {
      if (i) putchar(' ');
      print_quoted(args[i]);
    }
    printf("\n");
    free(args);
    return CLI_EXIT_OK;
  }
#ifdef QUIRE_SANITIZER_PRELOAD
  /* A sanitized build's extension needs its runtimes loaded first in a
   * shell built without them. */
  if (*QUIRE_SANITIZER_PRELOAD) {
    setenv("LD_PRELOAD", QUIRE_SANITIZER_PRELOAD, 1);
    setenv("ASAN_OPTIONS", "detect_leaks=0", 0);
  }
#endif
  fflush(stdout);
  execvp(shell, args);
  fprintf(stderr, "quire sql: cannot run %s: %s (install the sqlite3 package, or set QUIRE_SQLITE3)\n", shell,
          strerror(errno));
  free(args);
  return CLI_EXIT_FAIL;
}
