/*
 * cli/cmd_volume.c — `quire volume create|list|status|sync|reset|fork|
 * import|export`: the client runtime (quire/quire.h) from the shell, on a
 * data directory of its own, talking to the metastore and pagestore.
 */
#include "cli/cli.h"
#include "quire/quire.h"
#include "metastore/client.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char quire_cmd_volume_summary[] = "create, list, sync, reset, fork, import and export volumes (client side)";

static void help(void) {
  printf("usage: quire volume create NAME\n"
         "       quire volume list\n"
         "       quire volume status NAME|VID\n"
         "       quire volume sync NAME|VID          push local commits, then pull\n"
         "       quire volume reset NAME|VID         drop unpushed commits, go to the remote head\n"
         "       quire volume fork NAME|VID          push the local head as a new volume\n"
         "       quire volume fork-at VID LSN        server side: a new volume whose first commit is\n"
         "                                           VID at LSN (0: its latest), copied by the server\n"
         "       quire volume import NAME|VID FILE   a file of 4 KiB pages becomes the volume's content\n"
         "       quire volume export NAME|VID FILE   the volume's pages into FILE (fetching absent ones)\n"
         "\n"
         "options (before or after the subcommand's arguments):\n"
         "  --data DIR        client data directory (QUIRE_DATA_DIR; default ./quire-client)\n"
         "  --metastore URL   (QUIRE_METASTORE; default http://127.0.0.1:3001)\n"
         "  --pagestore URL   (QUIRE_PAGESTORE; default http://127.0.0.1:3002)\n"
         "  --token TOKEN     bearer token for the services (QUIRE_TOKEN)\n"
         "  --local           no services: local commits only\n"
         "  --no-push         create/import: commit locally only (push later with sync)\n"
         "  --timeout-ms N    bound on each sync operation (default: none; each call 30 s)\n"
         "\n"
         "A NAME is local to the data directory; a VID (22 characters) names a volume\n"
         "anywhere: opening one this directory has never seen adopts it (its pages are\n"
         "fetched as they are read). Exit status: 0 ok, 1 the operation failed (the\n"
         "message says why: conflict, services unavailable, ...), 2 usage error.\n");
}

struct vopts {
  const char *data, *ms, *ps, *token;
  int local, no_push;
  unsigned timeout_ms;
  char *pos[4];
  int npos;
};

static const char *env_or(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && *v ? v : def;
}

static int parse(int argc, char **argv, struct vopts *o) {
  static const struct option lopts[] = {{"data", required_argument, 0, 'd'},   {"metastore", required_argument, 0, 'm'},
                                        {"pagestore", required_argument, 0, 'p'}, {"token", required_argument, 0, 't'},
                                        {"local", no_argument, 0, 'l'},         {"no-push", no_argument, 0, 'n'},
                                        {"timeout-ms", required_argument, 0, 'T'}, {0, 0, 0, 0}};
  memset(o, 0, sizeof *o);
  o->data = env_or("QUIRE_DATA_DIR", "./quire-client");
  o->ms = env_or("QUIRE_METASTORE", "http://127.0.0.1:3001");
  o->ps = env_or("QUIRE_PAGESTORE", "http://127.0.0.1:3002");
  o->token = env_or("QUIRE_TOKEN", NULL);
  optind = 1;
  opterr = 0;
  for (;;) {
    int c = getopt_long(argc, argv, "-:", lopts, NULL);
    if (c == -1) break;
    unsigned long long n;
    switch (c) {
    case 1:
      if (o->npos == 4) return cli_usage_error("volume", "too many arguments");
      o->pos[o->npos++] = optarg;
      break;
    case 'd': o->data = optarg; break;
    case 'm': o->ms = optarg; break;
    case 'p': o->ps = optarg; break;
    case 't': o->token = optarg; break;
    case 'l': o->local = 1; break;
    case 'n': o->no_push = 1; break;
    case 'T':
      if (cli_parse_u64(optarg, &n) || n > 86400000) return cli_usage_error("volume", "bad --timeout-ms '%s'", optarg);
      o->timeout_ms = (unsigned)n;
      break;
    case ':': return cli_usage_error("volume", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error("volume", "unknown option '%s'", argv[optind - 1]);
    }
  }
  return 0;
}

static int open_client(const struct vopts *vo, quire_client **c) {
  quire_client_opts o;
  quire_client_opts_init(&o);
  o.data_dir = vo->data;
  if (!vo->local) {
    o.metastore_url = vo->ms;
    o.pagestore_url = vo->ps;
  }
  o.token = vo->token;
  int rc = quire_client_open(&o, c);
  return rc ? cli_fail("volume", rc, "opening the data directory") : 0;
}

static void print_stat(void *ctx, const char *name, uint64_t value) {
  (void)ctx;
  if (value) printf("  %-22s %llu\n", name, (unsigned long long)value);
}

static void print_status(quire_volume *v) {
  quire_volume_status st;
  int rc = quire_volume_status_get(v, &st);
  if (rc) {
    cli_fail("volume", rc, "status");
    return;
  }
  char vid[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&st.vid, vid);
  printf("volume      %s%s%s\n", vid, st.name[0] ? "  name " : "", st.name);
  printf("state       %s%s%s\n", quire_volume_state_name(st.state), st.push_in_progress ? " (push in progress)" : "",
         "");
  printf("local lsn   %llu   remote lsn %llu (local %llu)   unpushed commits %llu\n",
         (unsigned long long)st.local_lsn, (unsigned long long)st.remote_lsn, (unsigned long long)st.remote_local,
         (unsigned long long)st.unpushed_commits);
  printf("pages       %u (%llu local, %llu not fetched yet)\n", st.page_count, (unsigned long long)st.pages_local,
         (unsigned long long)st.pages_pending);
  if (st.last_error) printf("last error  %s\n", st.last_error_msg);
}

/* Runs one subcommand on the volume named by pos[0]. */
static int with_volume(const struct vopts *vo, const char *sub, unsigned flags) {
  quire_client *c;
  int status = open_client(vo, &c);
  if (status) return status;
  quire_volume *v = NULL;
  int rc;
  if (strcmp(sub, "create") == 0 && quire_volume_open(c, vo->pos[0], 0, &v) == 0) {
    quire_gid g;
    quire_volume_vid(v, &g);
    char vid[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&g, vid);
    fprintf(stderr, "quire volume: %s already exists (%s)\n", vo->pos[0], vid);
    status = CLI_EXIT_FAIL;
    goto out;
  }
  rc = quire_volume_open(c, vo->pos[0], flags, &v);
  if (rc) {
    status = cli_fail("volume", rc, vo->pos[0]);
    goto out;
  }
  if (strcmp(sub, "create") == 0) {
    quire_gid g;
    quire_volume_vid(v, &g);
    char vid[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&g, vid);
    printf("%s %s\n", vo->pos[0], vid);
  } else if (strcmp(sub, "status") == 0) {
    print_status(v);
    quire_stats s;
    quire_volume_stats(v, &s);
    printf("counters (this process):\n");
    quire_stats_foreach(&s, print_stat, NULL);
  } else if (strcmp(sub, "sync") == 0) {
    rc = quire_volume_sync(v, vo->timeout_ms);
    if (rc) status = cli_fail("volume", rc, "sync");
    print_status(v);
  } else if (strcmp(sub, "reset") == 0) {
    rc = quire_volume_reset(v, vo->timeout_ms);
    if (rc) status = cli_fail("volume", rc, "reset");
    print_status(v);
  } else if (strcmp(sub, "fork") == 0) {
    quire_gid g;
    rc = quire_volume_fork(v, vo->timeout_ms, &g);
    if (rc) {
      status = cli_fail("volume", rc, "fork");
    } else {
      char vid[QUIRE_GID_TEXT_LEN + 1];
      quire_gid_format(&g, vid);
      printf("forked into %s\n", vid);
    }
  } else if (strcmp(sub, "import") == 0) {
    rc = quire_volume_import(v, vo->pos[1]);
    if (rc) status = cli_fail("volume", rc, vo->pos[1]);
    quire_volume_status st;
    if (!rc && !quire_volume_status_get(v, &st)) printf("imported %u pages from %s\n", st.page_count, vo->pos[1]);
  } else if (strcmp(sub, "export") == 0) {
    rc = quire_volume_export(v, vo->pos[1]);
    if (rc) status = cli_fail("volume", rc, vo->pos[1]);
    quire_volume_status st;
    if (!rc && !quire_volume_status_get(v, &st)) printf("exported %u pages to %s\n", st.page_count, vo->pos[1]);
  }
  if (!status && !vo->local && !vo->no_push && (strcmp(sub, "create") == 0 || strcmp(sub, "import") == 0)) {
    rc = quire_volume_push(v, vo->timeout_ms);
    if (rc) status = cli_fail("volume", rc, "push (the local commit is kept; retry with 'quire volume sync')");
  }
out:
  quire_volume_close(v);
  rc = quire_client_close(c);
  if (rc && !status) status = cli_fail("volume", rc, "closing the data directory");
  return status;
}

static int list(const struct vopts *vo) {
  quire_client *c;
  int status = open_client(vo, &c);
  if (status) return status;
  quire_volume_info *l;
  size_t n;
  int rc = quire_volume_list(c, &l, &n);
  if (rc) {
    status = cli_fail("volume", rc, "list");
  } else {
    for (size_t i = 0; i < n; i++) {
      char vid[QUIRE_GID_TEXT_LEN + 1];
      quire_gid_format(&l[i].vid, vid);
      printf("%s  %s\n", vid, l[i].name[0] ? l[i].name : "-");
    }
    quire_volume_list_free(l);
  }
  rc = quire_client_close(c);
  if (rc && !status) status = cli_fail("volume", rc, "closing the data directory");
  return status;
}

/* fork-at VID LSN: the metastore forks server-side (POST /metastore/v1/fork). */
static int fork_at(const struct vopts *vo) {
  if (vo->npos != 2) return cli_usage_error("volume", "fork-at takes 2 arguments (VID LSN)");
  quire_gid vid;
  if (quire_gid_parse(vo->pos[0], strlen(vo->pos[0]), QUIRE_GID_VOLUME, &vid) != 0)
    return cli_usage_error("volume", "fork-at: %s", quire_errmsg());
  char *end;
  unsigned long long lsn = strtoull(vo->pos[1], &end, 10);
  if (*end || end == vo->pos[1]) return cli_usage_error("volume", "fork-at: LSN '%s' is not a number", vo->pos[1]);
  struct quire_http_client_opts ho = {.token = vo->token};
  quire_msclient *c;
  int rc = quire__msclient_open(vo->ms, &ho, &c);
  if (rc) return cli_fail("volume", rc, vo->ms);
  struct quire_snapshot snap;
  rc = quire__msclient_fork(c, &vid, lsn, NULL, &snap);
  quire__msclient_close(c);
  if (rc) return cli_fail("volume", rc, "fork-at");
  char t[QUIRE_GID_TEXT_LEN + 1];
  quire_gid_format(&snap.vid, t);
  printf("forked into %s (%u pages)\n", t, snap.page_count);
  return CLI_EXIT_OK;
}

int quire_cmd_volume(int argc, char **argv) {
  if (argc < 2 || cli_wants_help(argc, argv)) {
    help();
    return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
  }
  const char *sub = argv[1];
  struct vopts vo;
  int rc = parse(argc - 1, argv + 1, &vo);
  if (rc) return rc;
  static const struct {
    const char *name;
    int args;
    unsigned flags;
  } subs[] = {{"create", 1, QUIRE_CREATE}, {"list", 0, 0},   {"status", 1, 0}, {"sync", 1, 0},
              {"reset", 1, 0},             {"fork", 1, 0},   {"import", 2, QUIRE_CREATE}, {"export", 2, 0}};
  if (strcmp(sub, "fork-at") == 0) return fork_at(&vo);
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
    if (strcmp(sub, subs[i].name) != 0) continue;
    if (vo.npos != subs[i].args)
      return cli_usage_error("volume", "%s takes %d argument%s", sub, subs[i].args, subs[i].args == 1 ? "" : "s");
    if (subs[i].args == 0) return list(&vo);
    return with_volume(&vo, sub, subs[i].flags);
  }
  return cli_usage_error("volume", "unknown subcommand '%s'", sub);
}
