/*
 * cli/cmd_token.c — `quire token new|inspect|keygen|rotate|pubkey`: make
 * and read the access tokens of the services (core/token.h,
 * docs/SECURITY.md), and manage their key file.
 */
#include "cli/cli.h"
#include "core/token.h"
#include "util/clock.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <string.h>
#include <time.h>

const char quire_cmd_token_summary[] = "make and inspect access tokens; manage the token key";

static void help(void) {
  printf("usage: quire token new (--data DIR | --key FILE) --perm read|write|admin\n"
         "                       [--volume VID]... [--ttl 24h] [--subject NAME]\n"
         "       quire token inspect [--data DIR | --key FILE] TOKEN\n"
         "       quire token keygen --key FILE\n"
         "       quire token rotate (--data DIR | --key FILE)\n"
         "       quire token pubkey (--data DIR | --key FILE) --out FILE\n"
         "\n"
         "new      prints a token signed with the first key of the key file (DIR/auth.key\n"
         "         of `quire server --data DIR`). Each --volume adds a volume to its scope\n"
         "         (at most 16); without one the token covers every volume. --ttl takes\n"
         "         s, m, h or d (default 24h).\n"
         "inspect  prints what a token claims. With a key it also verifies it and exits 1\n"
         "         when it is not valid (bad signature, unknown key id, expired).\n"
         "keygen   creates a key file with one fresh key (mode 0600) unless it exists.\n"
         "rotate   puts a fresh key first (it signs from now on) and keeps the previous\n"
         "         one, so tokens it signed stay valid; an older key is dropped. Restart\n"
         "         the services to load it.\n"
         "pubkey   writes the public keys only: for a service that checks tokens but\n"
         "         must not be able to make them.\n");
}

static int key_path(const char *data, const char *key, char *out, size_t cap) {
  if (key) return (size_t)snprintf(out, cap, "%s", key) < cap ? 0 : -1;
  if (data) return (size_t)snprintf(out, cap, "%s/auth.key", data) < cap ? 0 : -1;
  return -1;
}

/* "24h" → seconds. */
static int parse_ttl(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || v == 0) return -1;
  uint64_t mul = 1;
  if (*end == 'm')
    mul = 60;
  else if (*end == 'h')
    mul = 3600;
  else if (*end == 'd')
    mul = 86400;
  else if (*end != 's' && *end != '\0')
    return -1;
  if (*end && end[1]) return -1;
  if (v > 100ull * 365 * 86400 / mul) return -1;
  *out = v * mul;
  return 0;
}

static void print_time(const char *label, uint64_t secs) {
  time_t t = (time_t)secs;
  struct tm tm;
  char when[64] = "?";
  if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  printf("%s=%s\n", label, when);
}

static int token_new(int argc, char **argv) {
  static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                       {"key", required_argument, 0, 'k'},
                                       {"perm", required_argument, 0, 'p'},
                                       {"volume", required_argument, 0, 'v'},
                                       {"ttl", required_argument, 0, 't'},
                                       {"subject", required_argument, 0, 's'},
                                       {0, 0, 0, 0}};
  const char *data = NULL, *key = NULL;
  struct quire_token t = {0};
  uint64_t ttl = 24 * 3600;
  int c;
  optind = 1;
  opterr = 0;
  snprintf(t.subject, sizeof t.subject, "cli");
  while ((c = getopt_long(argc, argv, ":d:k:p:v:t:s:", opts, NULL)) != -1) {
    switch (c) {
    case 'd': data = optarg; break;
    case 'k': key = optarg; break;
    case 'p':
      t.perm = (uint8_t)quire__perm_parse(optarg);
      if (!t.perm) return cli_usage_error("token", "--perm must be read, write or admin");
      break;
    case 'v':
      if (t.nvol == QUIRE_TOKEN_MAX_VOLUMES) return cli_usage_error("token", "at most 16 volumes");
      if (quire_gid_parse(optarg, strlen(optarg), QUIRE_GID_VOLUME, &t.vols[t.nvol]) != 0)
        return cli_usage_error("token", "--volume '%s': %s", optarg, quire_errmsg());
      t.nvol++;
      break;
    case 't':
      if (parse_ttl(optarg, &ttl))
        return cli_usage_error("token", "bad --ttl '%s' (e.g. 30m, 24h, 7d)", optarg);
      break;
    case 's':
      if (strlen(optarg) > QUIRE_TOKEN_MAX_SUBJECT)
        return cli_usage_error("token", "subject over 64 characters");
      snprintf(t.subject, sizeof t.subject, "%s", optarg);
      break;
    case ':': return cli_usage_error("token", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error("token", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return cli_usage_error("token", "unexpected argument '%s'", argv[optind]);
  if (!t.perm) return cli_usage_error("token", "--perm read|write|admin is required");
  char path[PATH_MAX];
  if (key_path(data, key, path, sizeof path))
    return cli_usage_error("token", "--data DIR or --key FILE is required");
  struct quire_keyset ks;
  int rc = quire__keyset_load(path, &ks);
  if (rc) return cli_fail("token", rc, path);
  t.issued = quire__wall_ms() / 1000;
  t.expires = t.issued + ttl;
  char text[QUIRE_TOKEN_TEXT_MAX + 1];
  rc = quire__token_sign(&ks, &t, text, sizeof text);
  quire__keyset_wipe(&ks);
  if (rc) return cli_fail("token", rc, "signing");
  puts(text);
  sodium_memzero(text, sizeof text);
  return CLI_EXIT_OK;
}

static int token_inspect(int argc, char **argv) {
  static const struct option opts[] = {
      {"data", required_argument, 0, 'd'}, {"key", required_argument, 0, 'k'}, {0, 0, 0, 0}};
  const char *data = NULL, *key = NULL;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":d:k:", opts, NULL)) != -1) {
    switch (c) {
    case 'd': data = optarg; break;
    case 'k': key = optarg; break;
    case ':': return cli_usage_error("token", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error("token", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind != argc - 1) return cli_usage_error("token", "inspect takes one token");
  const char *text = argv[optind];
  struct quire_token t;
  int rc = quire__token_parse(text, strlen(text), &t);
  if (rc) {
    fprintf(stderr, "quire token: %s\n", quire_errmsg());
    return CLI_EXIT_FAIL;
  }
  char kid[2 * QUIRE_TOKEN_KID + 1];
  sodium_bin2hex(kid, sizeof kid, t.kid, QUIRE_TOKEN_KID);
  printf("version=%u\nkey_id=%s\nsubject=%s\nperm=%s\n", t.version, kid, t.subject, quire__perm_name(t.perm));
  if (t.nvol == 0) printf("volumes=all\n");
  for (unsigned i = 0; i < t.nvol; i++) {
    char v[QUIRE_GID_TEXT_LEN + 1];
    quire_gid_format(&t.vols[i], v);
    printf("volume=%s\n", v);
  }
  print_time("issued", t.issued);
  print_time("expires", t.expires);
  char path[PATH_MAX];
  if (key_path(data, key, path, sizeof path)) {
    printf("verified=no (give --data or --key to check the signature)\n");
    return CLI_EXIT_OK;
  }
  struct quire_keyset ks;
  rc = quire__keyset_load(path, &ks);
  if (rc) return cli_fail("token", rc, path);
  rc = quire__token_verify(&ks, text, strlen(text), quire__wall_ms() / 1000, QUIRE_TOKEN_SKEW_S, &t);
  quire__keyset_wipe(&ks);
  if (rc) {
    printf("verified=no: %s\n", quire_errmsg());
    return CLI_EXIT_FAIL;
  }
  printf("verified=yes\n");
  return CLI_EXIT_OK;
}

static int key_only(int argc, char **argv, const char **data, const char **key, const char **out) {
  static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                       {"key", required_argument, 0, 'k'},
                                       {"out", required_argument, 0, 'o'},
                                       {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":d:k:o:", opts, NULL)) != -1) {
    switch (c) {
    case 'd': *data = optarg; break;
    case 'k': *key = optarg; break;
    case 'o':
      if (!out) return cli_usage_error("token", "unknown option '--out'");
      *out = optarg;
      break;
    case ':': return cli_usage_error("token", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error("token", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return cli_usage_error("token", "unexpected argument '%s'", argv[optind]);
  return 0;
}

static int token_keygen(int argc, char **argv) {
  const char *data = NULL, *key = NULL;
  int rc = key_only(argc, argv, &data, &key, NULL);
  if (rc) return rc;
  char path[PATH_MAX];
  if (key_path(data, key, path, sizeof path)) return cli_usage_error("token", "--key FILE is required");
  struct quire_keyset ks;
  int created = 0;
  rc = quire__keyset_ensure(path, &ks, &created);
  quire__keyset_wipe(&ks);
  if (rc) return cli_fail("token", rc, path);
  printf("%s %s\n", created ? "created" : "exists:", path);
  return CLI_EXIT_OK;
}

static int token_rotate(int argc, char **argv) {
  const char *data = NULL, *key = NULL;
  int rc = key_only(argc, argv, &data, &key, NULL);
  if (rc) return rc;
  char path[PATH_MAX];
  if (key_path(data, key, path, sizeof path))
    return cli_usage_error("token", "--data DIR or --key FILE is required");
  struct quire_keyset ks, next = {0};
  rc = quire__keyset_load(path, &ks);
  if (rc) return cli_fail("token", rc, path);
  rc = quire__token_key_new(&next.keys[0]);
  next.keys[1] = ks.keys[0];
  next.n = 2;
  if (!rc) rc = quire__keyset_save(path, &next);
  char kid[2 * QUIRE_TOKEN_KID + 1];
  sodium_bin2hex(kid, sizeof kid, next.keys[0].kid, QUIRE_TOKEN_KID);
  quire__keyset_wipe(&ks);
  quire__keyset_wipe(&next);
  if (rc) return cli_fail("token", rc, path);
  printf("new signing key %s in %s (the previous key still verifies)\n", kid, path);
  return CLI_EXIT_OK;
}

static int token_pubkey(int argc, char **argv) {
  const char *data = NULL, *key = NULL, *out = NULL;
  int rc = key_only(argc, argv, &data, &key, &out);
  if (rc) return rc;
  char path[PATH_MAX];
  if (key_path(data, key, path, sizeof path) || !out)
    return cli_usage_error("token", "(--data DIR | --key FILE) and --out FILE are required");
  struct quire_keyset ks;
  rc = quire__keyset_load(path, &ks);
  if (rc) return cli_fail("token", rc, path);
  for (unsigned i = 0; i < ks.n; i++) {
    sodium_memzero(ks.keys[i].sk, sizeof ks.keys[i].sk);
    ks.keys[i].has_sk = 0;
  }
  rc = quire__keyset_save(out, &ks);
  quire__keyset_wipe(&ks);
  if (rc) return cli_fail("token", rc, out);
  return CLI_EXIT_OK;
}

int quire_cmd_token(int argc, char **argv) {
  static const struct cli_sub subs[] = {
      {"new", token_new},       {"inspect", token_inspect}, {"keygen", token_keygen},
      {"rotate", token_rotate}, {"pubkey", token_pubkey},   {NULL, NULL},
  };
  return cli_dispatch("token", argc, argv, subs, help);
}
