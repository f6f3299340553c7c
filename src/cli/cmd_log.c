/*
 * cli/cmd_log.c — `quire log check|restore`: find and repair damage in a
 * volume's commit log (docs/OPERATIONS.md "A lost or damaged commit
 * object").
 *
 * check walks volumes/{vid}/log/1, 2, ... in the store, validates every
 * record, and at the first missing key lists the log once to see whether
 * later commits exist (a gap). restore copies one record from a catalog
 * file (a metastore's or a pagestore's: both hold the exact commit records)
 * back into the store, after checking that it is the record for that
 * volume and LSN.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/commit_record.h"
#include "quire/lsm.h"
#include "quire/objstore.h"
#include "util/endian.h"
#include "util/err.h"

const char quire_cmd_log_summary[] = "check a volume's commit log, restore a commit object from a catalog";

static void help(void) {
  printf("usage: quire log check --store URL --vid VID\n"
         "       quire log restore --store URL --vid VID --lsn N --catalog FILE [--replace]\n"
         "\n"
         "check    reads volumes/VID/log/1, 2, ... from the store and validates each\n"
         "         record; at the first missing key it lists the log once to see\n"
         "         whether later commits exist (a gap). Prints what is damaged;\n"
         "         exits 1 if anything is, 0 if the log is whole.\n"
         "restore  copies the record of (VID, N) from a catalog file (a metastore's\n"
         "         or a pagestore's catalog: both hold the exact commit records) into\n"
         "         the store, after checking it is the record for that volume and\n"
         "         LSN. A missing object is created; a damaged one is replaced only\n"
         "         with --replace; a different valid record is never touched. The\n"
         "         catalog must not be open in a running service (stop it, or copy\n"
         "         the file and name the copy).\n");
}

struct args {
  const char *store, *vid_text, *catalog;
  unsigned long long lsn;
  int replace;
  quire_gid vid;
};

static int parse(const char *sub, int argc, char **argv, struct args *a, int want_restore) {
  static const struct option opts[] = {
      {"store", required_argument, 0, 's'}, {"vid", required_argument, 0, 'v'},
      {"lsn", required_argument, 0, 'l'},   {"catalog", required_argument, 0, 'c'},
      {"replace", no_argument, 0, 'r'},     {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":s:v:l:c:r", opts, NULL)) != -1) {
    switch (c) {
    case 's': a->store = optarg; break;
    case 'v': a->vid_text = optarg; break;
    case 'c': a->catalog = optarg; break;
    case 'r': a->replace = 1; break;
    case 'l':
      if (cli_parse_u64(optarg, &a->lsn) || a->lsn == 0)
        return cli_usage_error("log", "bad lsn '%s'", optarg);
      break;
    case ':': return cli_usage_error("log", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error("log", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return cli_usage_error("log", "unexpected argument '%s'", argv[optind]);
  if (!a->store || !a->vid_text) return cli_usage_error("log", "%s needs --store and --vid", sub);
  if (want_restore && (!a->lsn || !a->catalog))
    return cli_usage_error("log", "restore needs --lsn and --catalog");
  if (quire_gid_parse(a->vid_text, strlen(a->vid_text), QUIRE_GID_VOLUME, &a->vid) != 0)
    return cli_usage_error("log", "'%s' is not a volume id: %s", a->vid_text, quire_errmsg());
  return 0;
}

/* 0 when bytes are the record of (vid, lsn); QUIRE_ECORRUPT with why. */
static int check_record(const quire_gid *vid, quire_lsn lsn, const uint8_t *p, size_t n) {
  struct quire_commit c;
  int rc = quire__commit_decode(p, n, &c);
  if (rc) return rc == QUIRE_ENOMEM ? rc : QUIRE_ECORRUPT;
  if (quire_gid_cmp(&c.vid, vid) != 0 || c.lsn != lsn)
    rc = quire__err(QUIRE_ECORRUPT, "holds the record of another volume or lsn (%llu)",
                    (unsigned long long)c.lsn);
  quire__commit_clear(&c);
  return rc;
}

static int log_check(int argc, char **argv) {
  struct args a;
  int rc = parse("check", argc, argv, &a, 0);
  if (rc) return rc;
  quire_objstore *store;
  rc = quire_objstore_open(a.store, &store);
  if (rc) return cli_fail("log", rc, a.store);
  int status = CLI_EXIT_OK;
  unsigned damaged = 0;
  quire_lsn lsn = 1;
  char key[64];
  for (;; lsn++) {
    quire__commit_key(&a.vid, lsn, key);
    uint8_t *data;
    size_t len;
    rc = quire_objstore_get(store, key, &data, &len);
    if (rc == QUIRE_ENOTFOUND) break;
    if (rc) {
      status = cli_fail("log", rc, key);
      goto out;
    }
    if (check_record(&a.vid, lsn, data, len) != 0) {
      printf("%s: damaged: %s\n", key, quire_errmsg());
      damaged++;
    }
    quire_objstore_free(data);
  }
  /* The log ends at lsn, unless something comes after it. */
  char prefix[64];
  size_t plen = strlen(key) - 16;
  memcpy(prefix, key, plen);
  prefix[plen] = '\0';
  quire_objstore_list list;
  rc = quire_objstore_list_keys(store, prefix, key, 1000, &list);
  if (rc) {
    quire_objstore_list_free(&list);
    status = cli_fail("log", rc, "listing the log");
    goto out;
  }
  size_t later = 0;
  const char *first_later = NULL;
  for (size_t i = 0; i < list.count; i++) {
    quire_lsn l;
    const char *name = list.entries[i].key + plen;
    if (strlen(name) == 16 && quire_lsn_parse(name, 16, &l) == 0 && l > lsn) {
      if (!first_later) first_later = list.entries[i].key;
      later++;
    }
  }
  if (later) {
    printf("%s: missing, but %zu%s later commit object%s exist, first %s: a gap\n", key, later,
           list.truncated ? "+" : "", later == 1 ? "" : "s", first_later);
    damaged++;
  }
  quire_objstore_list_free(&list);
  if (damaged) {
    printf("volume %s: %u problem%s in the log (lsn 1..%llu read); see docs/OPERATIONS.md\n", a.vid_text,
           damaged, damaged == 1 ? "" : "s", (unsigned long long)(lsn - 1));
    status = CLI_EXIT_FAIL;
  } else {
    printf("volume %s: log 1..%llu is whole\n", a.vid_text, (unsigned long long)(lsn - 1));
  }
out:
  quire_objstore_close(store);
  return status;
}

static int log_restore(int argc, char **argv) {
  struct args a;
  int rc = parse("restore", argc, argv, &a, 1);
  if (rc) return rc;
  char key[64];
  quire__commit_key(&a.vid, a.lsn, key);
  lsm_options o;
  lsm_options_init(&o);
  o.read_only = 1;
  lsm_db *db = NULL;
  rc = lsm_open(a.catalog, &o, &db);
  if (rc) return cli_fail("log", rc, a.catalog);
  uint8_t ck[QUIRE_GID_SIZE + 8];
  memcpy(ck, a.vid.b, QUIRE_GID_SIZE);
  st_be64(ck + QUIRE_GID_SIZE, a.lsn);
  lsm_value v = {0};
  quire_objstore *store = NULL;
  uint8_t *rec = NULL, *there = NULL;
  size_t reclen = 0, therelen = 0;
  int status = CLI_EXIT_OK;
  rc = lsm_get(db, ck, sizeof ck, &v);
  if (rc) {
    status =
        cli_fail("log", rc, rc == QUIRE_ENOTFOUND ? "the catalog has no record for that lsn" : a.catalog);
    goto out;
  }
  reclen = v.len;
  rec = malloc(reclen ? reclen : 1);
  if (!rec) {
    status = cli_fail("log", QUIRE_ENOMEM, "copying the record");
    goto out;
  }
  memcpy(rec, v.data, reclen);
  lsm_value_release(&v);
  if (check_record(&a.vid, a.lsn, rec, reclen) != 0) {
    status = cli_fail("log", QUIRE_ECORRUPT, "the catalog's record is not usable");
    goto out;
  }
  rc = quire_objstore_open(a.store, &store);
  if (rc) {
    status = cli_fail("log", rc, a.store);
    goto out;
  }
  rc = quire_objstore_get(store, key, &there, &therelen);
  if (rc == 0) {
    if (therelen == reclen && memcmp(there, rec, reclen) == 0) {
      printf("%s: already holds this record; nothing to do\n", key);
      goto out;
    }
    if (check_record(&a.vid, a.lsn, there, therelen) == 0) {
      printf("%s: holds another valid record for this lsn; not touching it (the catalog is older or from "
             "another deployment)\n",
             key);
      status = CLI_EXIT_FAIL;
      goto out;
    }
    if (!a.replace) {
      printf("%s: damaged (%s); run again with --replace to overwrite it\n", key, quire_errmsg());
      status = CLI_EXIT_FAIL;
      goto out;
    }
    rc = quire_objstore_put(store, key, rec, reclen);
  } else if (rc == QUIRE_ENOTFOUND) {
    rc = quire_objstore_put_if_absent(store, key, rec, reclen);
  }
  if (rc) {
    status = cli_fail("log", rc, key);
    goto out;
  }
  printf("%s: restored from %s (%zu bytes)\n", key, a.catalog, reclen);
out:
  lsm_value_release(&v);
  quire_objstore_free(there);
  quire_objstore_close(store);
  free(rec);
  lsm_close(db);
  return status;
}

int quire_cmd_log(int argc, char **argv) {
  static const struct cli_sub subs[] = {{"check", log_check}, {"restore", log_restore}, {NULL, NULL}};
  return cli_dispatch("log", argc, argv, subs, help);
}
