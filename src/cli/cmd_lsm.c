/* cli/cmd_lsm.c — `quire lsm stat|dump|check FILE`: inspect an LSM database
 * file (opened read-only; nothing is written, not even recovery), and
 * `quire lsm compact FILE` / `quire lsm vacuum FILE NEW`: maintenance. */
#include <getopt.h>
#include <string.h>

#include "cli/cli.h"
#include "quire/lsm.h"
#include "util/util.h"

const char quire_cmd_lsm_summary[] =
    "inspect or maintain an LSM key-value file: stat, dump, check, compact, vacuum";

static void help(void) {
  printf("usage: quire lsm stat FILE\n"
         "       quire lsm dump FILE [--from KEY] [--limit N] [--hex]\n"
         "       quire lsm check FILE\n"
         "       quire lsm compact FILE\n"
         "       quire lsm vacuum FILE NEWFILE\n"
         "\n"
         "stat   header, levels and segments (leaves, tombstones, range deletes),\n"
         "       pages, free space, log and in-memory table, counters.\n"
         "dump   keys and values in order, one per line: key TAB length TAB value\n"
         "       (bytes outside printable ASCII as \\xNN; values cut at 64 bytes;\n"
         "       --hex prints both in hex). --from starts at the first key >= KEY.\n"
         "check  walks every segment, verifies every page checksum, key order,\n"
         "       parent keys and counts, the free list; reports leaked pages.\n"
         "       Exits 1 if anything is corrupt.\n"
         "compact merges every level into the last one, dropping every tombstone.\n"
         "vacuum writes the live data into NEWFILE (must not exist): one segment,\n"
         "       no free pages; FILE is not changed.\n"
         "stat, dump and check open the file read-only (a log left by a crash is\n"
         "replayed in memory); compact and vacuum open it for writing (the file must\n"
         "not be open elsewhere).\n");
}

/* The library's own messages (a rebuilt free list, a failed merge) go to
 * stderr here: the library itself never prints. */
static void log_stderr(void *ctx, int level, const char *msg) {
  (void)ctx;
  if (level <= LSM_LOG_WARN) fprintf(stderr, "quire lsm: %s\n", msg);
}

static int open_ro(const char *path, lsm_db **db) {
  lsm_options o;
  lsm_options_init(&o);
  o.log_fn = log_stderr;
  o.read_only = 1;
  o.sync_mode = LSM_SYNC_OFF;
  return lsm_open(path, &o, db);
}

static void print_bytes(const uint8_t *p, size_t n, int hex) {
  for (size_t i = 0; i < n; i++) {
    if (hex)
      printf("%02x", p[i]);
    else if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
      putchar(p[i]);
    else
      printf("\\x%02x", p[i]);
  }
}

static int do_stat(const char *path) {
  lsm_db *db;
  int rc = open_ro(path, &db);
  if (rc) return cli_fail("lsm", rc, path);
  lsm_stats st;
  lsm_stats_get(db, &st);
  printf("file            %s\n", path);
  printf("format          version %u, page size %u, reserve %u, checksums %s\n", st.format_version,
         st.page_size, st.reserve_bytes, st.checksums_verified ? "verified" : "not verified");
  printf("header          generation %llu, change counter %llu, merge counter %llu\n",
         (unsigned long long)st.generation, (unsigned long long)st.change_counter,
         (unsigned long long)st.merge_counter);
  printf("pages           %llu total (%.1f MiB), %llu free\n", (unsigned long long)st.pages_total,
         (double)st.pages_total * st.page_size / 1048576.0, (unsigned long long)st.pages_free);
  printf("log             %u pages at page %u, epoch %llu, %llu bytes to replay\n", st.wal_pages,
         st.wal_start, (unsigned long long)st.wal_epoch, (unsigned long long)st.wal_bytes_used);
  printf("memtable        %llu entries (after replaying the log)\n", (unsigned long long)st.mem_entries);
  printf("levels          incoming %u, waiting %u, regular %u (page size x leaves = bytes)\n", st.incoming,
         st.waiting, st.nlevels > 2 ? st.nlevels - 2 : 0);
  printf("  %-11s %5s %6s %10s %11s %11s %7s %12s\n", "level", "segs", "depth", "leaves", "tombstones", "MiB",
         "ranges", "nominal MiB");
  for (uint32_t i = 0; i < st.nlevels && i < LSM_STATS_LEVELS; i++) {
    const lsm_level_stats *L = &st.level[i];
    char nominal[32] = "-";
    if (L->nominal_bytes) snprintf(nominal, sizeof nominal, "%.1f", (double)L->nominal_bytes / 1048576.0);
    printf("  %-11s %5u %6u %10llu %11llu %11.1f %7llu %12s\n", L->name, L->segments, L->depth,
           (unsigned long long)L->leaves, (unsigned long long)L->tombstones, (double)L->bytes / 1048576.0,
           (unsigned long long)L->ranges, nominal);
  }
  lsm_segment_stats segs[128];
  size_t nseg = 0;
  lsm_stats_segments(db, segs, sizeof segs / sizeof segs[0], &nseg);
  for (size_t i = 0; i < nseg && i < sizeof segs / sizeof segs[0]; i++) {
    const lsm_segment_stats *s = &segs[i];
    char where[32];
    if (s->level == 0)
      snprintf(where, sizeof where, "incoming[%u]", s->pos);
    else if (s->level == 1)
      snprintf(where, sizeof where, "waiting[%u]", s->pos);
    else
      snprintf(where, sizeof where, "regular[%u]", s->level - 2);
    if (!s->root && !s->ranges) {
      printf("  %-14s empty\n", where);
      continue;
    }
    printf("  %-14s root %u, depth %u, %llu leaves, %llu tombstones, %llu range deletes\n", where, s->root,
           s->depth, (unsigned long long)s->leaves, (unsigned long long)s->tombstones,
           (unsigned long long)s->ranges);
  }
  printf("fragmentation   %.1f%% of the file is free (%llu of %llu pages)\n",
         st.pages_total ? 100.0 * (double)st.pages_free / (double)st.pages_total : 0.0,
         (unsigned long long)st.pages_free, (unsigned long long)st.pages_total);
  printf(
      "merges          %llu (merge counter), this session: %llu moved, %llu full, %llu partial, %llu pages "
      "written, %llu subtrees recycled, %llu tombstones dropped, %llu errors\n",
      (unsigned long long)st.merge_counter, (unsigned long long)st.merges_moved,
      (unsigned long long)st.merges_full, (unsigned long long)st.merges_partial,
      (unsigned long long)st.merge_pages_written, (unsigned long long)st.merge_recycled,
      (unsigned long long)st.tombstones_dropped, (unsigned long long)st.merge_errors);
  printf("counters        header writes %llu, syncs %llu, cache hits %llu, misses %llu\n",
         (unsigned long long)st.header_writes, (unsigned long long)st.log_syncs,
         (unsigned long long)st.cache_hits, (unsigned long long)st.cache_misses);
  lsm_close(db);
  return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int do_dump(int argc, char **argv) {
  static const struct option opts[] = {{"from", required_argument, 0, 'f'},
                                       {"limit", required_argument, 0, 'n'},
                                       {"hex", no_argument, 0, 'x'},
                                       {0, 0, 0, 0}};
  const char *from = NULL;
  unsigned long long limit = ~0ull;
  int hex = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":f:n:x", opts, NULL)) != -1) {
    switch (c) {
    case 'f': from = optarg; break;
    case 'n':
      if (cli_parse_u64(optarg, &limit)) return cli_usage_error("lsm", "bad limit '%s'", optarg);
      break;
    case 'x': hex = 1; break;
    case ':': return cli_usage_error("lsm", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error("lsm", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind + 1 != argc) return cli_usage_error("lsm", "dump needs exactly one FILE");
  const char *path = argv[optind];
  lsm_db *db;
  int rc = open_ro(path, &db);
  if (rc) return cli_fail("lsm", rc, path);
  lsm_cursor *cur;
  if ((rc = lsm_cursor_open(db, &cur))) {
    lsm_close(db);
    return cli_fail("lsm", rc, "opening a cursor");
  }
  rc = from ? lsm_cursor_seek(cur, from, strlen(from), LSM_SEEK_GE) : lsm_cursor_first(cur);
  unsigned long long n = 0;
  while (rc == 0 && n < limit) {
    const void *k;
    size_t kl;
    uint64_t vl;
    uint8_t head[64];
    size_t got;
    if ((rc = lsm_cursor_key(cur, &k, &kl)) || (rc = lsm_cursor_value_len(cur, &vl)) ||
        (rc = lsm_cursor_value_read(cur, 0, head, sizeof head, &got)))
      break;
    print_bytes(k, kl, hex);
    printf("\t%llu\t", (unsigned long long)vl);
    print_bytes(head, got, hex);
    printf("%s\n", vl > got ? "..." : "");
    n++;
    rc = lsm_cursor_next(cur);
  }
  lsm_cursor_close(cur);
  lsm_close(db);
  if (rc && rc != QUIRE_EEND && rc != QUIRE_ENOTFOUND) return cli_fail("lsm", rc, "reading");
  return CLI_EXIT_OK;
}

/* check prints every problem lsm_check finds (they come through log_fn) */
static void log_problems(void *ctx, int level, const char *msg) {
  (void)ctx;
  static const char prefix[] = "lsm check: ";
  if (level == LSM_LOG_ERROR && strncmp(msg, prefix, sizeof prefix - 1) == 0)
    printf("  %s\n", msg + sizeof prefix - 1);
  else
    log_stderr(ctx, level, msg);
}

static int do_check(const char *path) {
  lsm_db *db;
  lsm_options o;
  lsm_options_init(&o);
  o.read_only = 1;
  o.sync_mode = LSM_SYNC_OFF;
  o.log_fn = log_problems;
  int rc = lsm_open(path, &o, &db);
  if (rc) {
    printf("%s: cannot open: %s: %s\n", path, quire_strerror(rc), quire_errmsg());
    return CLI_EXIT_FAIL;
  }
  lsm_check_result cnt;
  rc = lsm_check(db, &cnt);
  /* also read every committed value through the public API */
  lsm_cursor *cur;
  uint64_t entries = 0;
  int rrc = lsm_cursor_open(db, &cur);
  if (!rrc) {
    for (rrc = lsm_cursor_first(cur); rrc == 0; rrc = lsm_cursor_next(cur)) {
      const void *v;
      size_t vl;
      if ((rrc = lsm_cursor_value(cur, &v, &vl))) break;
      entries++;
    }
    lsm_cursor_close(cur);
  }
  if (rrc == QUIRE_EEND) rrc = 0;
  lsm_stats st;
  lsm_stats_get(db, &st);
  lsm_close(db);
  if (rc || rrc) {
    printf("%s: CORRUPT (%s)\n", path, quire_strerror(rc ? rc : rrc));
    return CLI_EXIT_FAIL;
  }
  printf("%s: ok: %llu live entries, %u+%u+%u segments\n", path, (unsigned long long)entries, st.incoming,
         st.waiting, st.regular);
  printf("pages: %llu = 1 header + %llu log + %llu reachable + %llu free + %llu leaked\n",
         (unsigned long long)cnt.pages_total, (unsigned long long)cnt.pages_log,
         (unsigned long long)cnt.pages_segments, (unsigned long long)cnt.pages_free,
         (unsigned long long)cnt.pages_leaked);
  return CLI_EXIT_OK;
}

/* stat and check take exactly one FILE. */
static int one_file(int argc, char **argv) {
  if (argc != 2) return cli_usage_error("lsm", "%s needs exactly one FILE", argv[0]);
  if (argv[1][0] == '-') return cli_usage_error("lsm", "unknown option '%s'", argv[1]);
  return 0;
}
static int sub_stat(int argc, char **argv) {
  int rc = one_file(argc, argv);
  return rc ? rc : do_stat(argv[1]);
}
static int sub_check(int argc, char **argv) {
  int rc = one_file(argc, argv);
  return rc ? rc : do_check(argv[1]);
}

static int open_rw(const char *path, lsm_db **db) {
  lsm_options o;
  lsm_options_init(&o);
  o.log_fn = log_stderr;
  o.merge_off = 1; /* this command does the merging */
  return lsm_open(path, &o, db);
}

static int sub_compact(int argc, char **argv) {
  int rc = one_file(argc, argv);
  if (rc) return rc;
  lsm_db *db;
  if ((rc = open_rw(argv[1], &db))) return cli_fail("lsm", rc, argv[1]);
  lsm_stats a, b;
  lsm_stats_get(db, &a);
  uint64_t t0 = quire__mono_ns();
  rc = lsm_compact(db);
  lsm_stats_get(db, &b);
  int crc = lsm_close(db);
  if (rc || crc) return cli_fail("lsm", rc ? rc : crc, "compact");
  printf("%s: compacted in %.2f s: %u segments -> %u, %llu pages written\n", argv[1],
         (double)(quire__mono_ns() - t0) / 1e9, a.incoming + a.waiting + a.regular,
         b.incoming + b.waiting + b.regular, (unsigned long long)b.merge_pages_written);
  return CLI_EXIT_OK;
}

static int sub_vacuum(int argc, char **argv) {
  if (argc != 3) return cli_usage_error("lsm", "vacuum needs FILE and NEWFILE");
  if (argv[1][0] == '-' || argv[2][0] == '-') return cli_usage_error("lsm", "unknown option");
  lsm_db *db;
  int rc = open_rw(argv[1], &db);
  if (rc) return cli_fail("lsm", rc, argv[1]);
  rc = lsm_vacuum(db, argv[2]);
  lsm_stats st;
  lsm_stats_get(db, &st);
  lsm_close(db);
  if (rc) return cli_fail("lsm", rc, argv[2]);
  lsm_db *nd;
  if ((rc = open_ro(argv[2], &nd))) return cli_fail("lsm", rc, argv[2]);
  lsm_stats ns;
  lsm_stats_get(nd, &ns);
  lsm_close(nd);
  printf("%s: %llu pages -> %s: %llu pages (%llu free)\n", argv[1], (unsigned long long)st.pages_total,
         argv[2], (unsigned long long)ns.pages_total, (unsigned long long)ns.pages_free);
  return CLI_EXIT_OK;
}

int quire_cmd_lsm(int argc, char **argv) {
  static const struct cli_sub subs[] = {
      {"dump", do_dump},        {"stat", sub_stat},     {"check", sub_check},
      {"compact", sub_compact}, {"vacuum", sub_vacuum}, {NULL, NULL},
  };
  return cli_dispatch("lsm", argc, argv, subs, help);
}
