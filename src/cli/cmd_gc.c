/*
 * cli/cmd_gc.c — `quire gc`: checkpoints, retention and segment garbage
 * collection over one object store (docs/GC.md), one pass or every
 * DURATION. It runs its own in-process metastore core on the store (commits
 * are ordered by create-if-absent, so it is safe beside running metastores
 * and other `quire gc` processes).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/serve.h"

const char quire_cmd_gc_summary[] = "checkpoints, retention and segment garbage collection (docs/GC.md)";

#include "gc/gc.h"
#include "metastore/catalog.h"
#include "metastore/service.h"
#include "util/log.h"

static struct quire_cfg_opt opts[] = {
    {"store", "QUIRE_STORE", "gc", "object store URL (file:///dir, s3://..., fault+URL)", NULL, 0, NULL,
     NULL},
    {"dry-run", "QUIRE_GC_DRY_RUN", "gc", "report what would be checkpointed and deleted; change nothing",
     NULL, 1, NULL, NULL},
    {"every", "QUIRE_GC_EVERY", "gc", "run a pass every DURATION (90s, 15m, 1h, 7d) until SIGINT/SIGTERM",
     NULL, 0, NULL, NULL},
    {"grace", "QUIRE_GC_GRACE", "gc",
     "delete unreferenced segments only when older than this (uploads not yet committed are younger)", "1h",
     0, NULL, NULL},
    {"keep-age", "QUIRE_GC_KEEP_AGE", "gc", "retention: keep commits younger than this", "7d", 0, NULL, NULL},
    {"keep-commits", "QUIRE_GC_KEEP_COMMITS", "gc",
     "retention: keep at least this many of each volume's newest commits", "100", 0, NULL, NULL},
    {"no-checkpoints", "QUIRE_GC_NO_CHECKPOINTS", "gc", "do not write checkpoints by policy", NULL, 1, NULL,
     NULL},
    {"checkpoint-walk", "QUIRE_GC_CHECKPOINT_WALK", "gc",
     "checkpoint a volume when a read at its head crosses more than this many segments", "64", 0, NULL, NULL},
    {"checkpoint-live", "QUIRE_GC_CHECKPOINT_LIVE", "gc",
     "... or when under this percentage of the pages its walk crosses are live", "50", 0, NULL, NULL},
    {"work-dir", "QUIRE_GC_WORK_DIR", "gc",
     "directory for the mark set's temporary LSM file (default $TMPDIR)", NULL, 0, NULL, NULL},
    {"quiet", "QUIRE_GC_QUIET", "gc", "no progress lines", NULL, 1, NULL, NULL},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void help(void) {
  printf("usage: quire gc --store URL [--dry-run] [--every DURATION] [options]\n"
         "\n"
         "One garbage-collection pass over the store (or one every DURATION):\n"
         "  1. volumes whose reads walk too far get a checkpoint (their pages repacked\n"
         "     into dense segments, committed as a rewrite);\n"
         "  2. retention: each volume keeps its latest checkpoint, the commits younger\n"
         "     than --keep-age and its --keep-commits newest; older commits are\n"
         "     deleted after volumes/{vid}/base/{lsn} records the first one kept;\n"
         "  3. every segment a retained commit references is marked; segments/ is\n"
         "     listed page by page and what is unmarked and older than --grace goes.\n"
         "Prints progress on long passes and a summary (objects and bytes live and\n"
         "deleted, requests spent). Safe to run beside servers and other gc processes\n"
         "and to kill at any point (docs/GC.md).\n"
         "\n");
  quire__cfg_help(stdout, opts, NOPTS);
}

static int quiet;

/* 1 when SIGINT or SIGTERM arrived within ms (they are blocked), else 0. */
static int signalled_within(uint64_t ms) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
  for (;;) {
    int sig = sigtimedwait(&set, NULL, &ts);
    if (sig > 0) return 1;
    if (errno == EAGAIN) return 0;
  }
}

static void on_progress(void *ctx, const char *phase, uint64_t done) {
  (void)ctx;
  if (!quiet) fprintf(stderr, "quire gc: %s: %llu\n", phase, (unsigned long long)done);
}

static int duration(const char *name, uint64_t *ms) {
  const char *t = quire__cfg_get(opts, NOPTS, name);
  if (!t) return 0;
  if (quire__gc_parse_duration(t, ms) != 0) return cli_usage_error("gc", "--%s: %s", name, quire_errmsg());
  return 0;
}

static void report(const struct gc_pass_result *r, int dry) {
  printf("quire gc: %s%llu volumes, %llu checkpoints written, %llu commits %s\n", dry ? "(dry run) " : "",
         (unsigned long long)r->volumes, (unsigned long long)r->checkpoints,
         (unsigned long long)r->commits_deleted, dry ? "would be deleted" : "deleted");
  printf("quire gc: segments: %llu live (%llu bytes, %llu of them only young), %llu %s (%llu bytes)\n",
         (unsigned long long)r->objects_live, (unsigned long long)r->bytes_live,
         (unsigned long long)r->objects_young, (unsigned long long)r->objects_deleted,
         dry ? "would be deleted" : "deleted", (unsigned long long)r->bytes_deleted);
  if (r->objects_gone || r->stale_marks_removed)
    printf(
        "quire gc: %llu segments already deleted by another pass; %llu mark files of killed passes removed\n",
        (unsigned long long)r->objects_gone, (unsigned long long)r->stale_marks_removed);
  printf("quire gc: %llu store requests, %llu ms%s\n", (unsigned long long)r->requests,
         (unsigned long long)r->duration_ms,
         r->volume_errors ? " (some volumes were skipped: nothing swept)" : "");
  fflush(stdout);
}

int quire_cmd_gc(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    help();
    return CLI_EXIT_OK;
  }
  if (quire__cfg_resolve(opts, NOPTS, argc, argv) != 0) {
    int rc = cli_usage_error("gc", "%s", quire_errmsg());
    quire__cfg_free(opts, NOPTS);
    return rc;
  }
  int status = CLI_EXIT_OK;
  quire_objstore *store = NULL;
  ms_catalog *cat = NULL;
  quire_metastore *ms = NULL;
  struct gc_pass_opts o = {0};
  uint64_t every = 0, grace = 0, keep_age = 0;
  unsigned long long n;
  const char *url = quire__cfg_get(opts, NOPTS, "store");
  if (!url) {
    status = cli_usage_error("gc", "--store URL is required");
    goto out;
  }
  if ((status = duration("every", &every)) || (status = duration("grace", &grace)) ||
      (status = duration("keep-age", &keep_age)))
    goto out;
  if ((status = cli_serve_number("gc", opts, NOPTS, "keep-commits", 1u << 30, &n))) goto out;
  o.retention.min_commits = n ? (unsigned)n : 1;
  if ((status = cli_serve_number("gc", opts, NOPTS, "checkpoint-walk", 1u << 20, &n))) goto out;
  o.checkpoint.max_walk_segments = (unsigned)n;
  if ((status = cli_serve_number("gc", opts, NOPTS, "checkpoint-live", 100, &n))) goto out;
  o.checkpoint.min_live_percent = (unsigned)n;
  o.retention.max_age_ms = keep_age ? keep_age : 1;
  o.grace_ms = grace ? grace : 1;
  o.dry_run = quire__cfg_true(quire__cfg_get(opts, NOPTS, "dry-run"));
  o.no_checkpoints = quire__cfg_true(quire__cfg_get(opts, NOPTS, "no-checkpoints"));
  o.work_dir = quire__cfg_get(opts, NOPTS, "work-dir");
  quiet = quire__cfg_true(quire__cfg_get(opts, NOPTS, "quiet"));
  o.progress = on_progress;
  int rc = quire_objstore_open(url, &store);
  if (!rc) rc = quire__catalog_mem_open(&cat);
  struct quire_metastore_opts mo = {.store = store, .catalog = cat};
  if (!rc) rc = quire_metastore_open(&mo, &ms);
  if (rc) {
    status = cli_fail("gc", rc, url);
    goto out;
  }
  o.store = store;
  if (every) quire__signals_block();
  for (;;) {
    struct gc_pass_result r;
    rc = quire__gc_pass(ms, &o, &r);
    if (rc) {
      status = cli_fail("gc", rc, "pass");
      if (!every) break;
    } else {
      report(&r, o.dry_run);
    }
    if (!every) break;
    if (signalled_within(every)) break;
  }
out:
  quire_metastore_close(ms);
  ms_catalog_close(cat);
  quire_objstore_close(store);
  quire__cfg_free(opts, NOPTS);
  return status;
}
