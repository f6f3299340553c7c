/* cli/serve.c — helpers shared by the service commands (see serve.h). */
#include "cli/serve.h"

#include <sys/stat.h>

#include "cli/cli.h"
#include "net/auth.h"
#include "util/log.h"

int cli_serve_number(const char *cmd, const struct quire_cfg_opt *opts, size_t n, const char *name,
                     unsigned long long max, unsigned long long *out) {
  const char *v = quire__cfg_get(opts, n, name);
  if (!v || cli_parse_u64(v, out) != 0 || *out > max)
    return cli_usage_error(cmd, "bad value '%s' for --%s", v ? v : "", name);
  return 0;
}

int cli_serve_auth(const char *cmd, const struct quire_cfg_opt *opts, size_t n, const char *default_key,
                   struct quire_auth_settings *a, const char **tls_cert, const char **tls_key) {
  int rc;
  unsigned long long v;
  /* What the services create (objects, catalogs, caches, keys) is private
   * to their user, whatever the creating code asked for. */
  umask(077);
  *tls_cert = quire__cfg_get(opts, n, "tls-cert");
  *tls_key = quire__cfg_get(opts, n, "tls-key");
  if (!*tls_cert != !*tls_key) return cli_usage_error(cmd, "--tls-cert and --tls-key go together");
  if (quire__cfg_true(quire__cfg_get(opts, n, "no-auth"))) {
    a->key_file = NULL;
    QLOG_WARN("%s: --no-auth: AUTHENTICATION IS OFF; anyone who reaches the ports can read, write and "
              "administer every volume",
              cmd);
    return 0;
  }
  a->key_file = quire__cfg_get(opts, n, "auth-key");
  if (!a->key_file) a->key_file = default_key;
  if (!a->key_file)
    return cli_usage_error(cmd,
                           "authentication is on: give --auth-key FILE (quire token keygen) or --no-auth");
  if ((rc = cli_serve_number(cmd, opts, n, "token-rate", 1000000, &v))) return rc;
  a->rate_per_s = (double)v;
  if ((rc = cli_serve_number(cmd, opts, n, "token-burst", 100000000, &v))) return rc;
  a->burst = (double)v;
  if ((rc = cli_serve_number(cmd, opts, n, "token-bytes-rate", 1ull << 40, &v))) return rc;
  a->bytes_per_s = (double)v;
  a->metrics_token = quire__cfg_get(opts, n, "metrics-token");
  if ((rc = cli_serve_number(cmd, opts, n, "max-volume-pages", UINT32_MAX, &v))) return rc;
  a->max_volume_pages = (uint32_t)v;
  if ((rc = cli_serve_number(cmd, opts, n, "max-commit-bytes", 1ull << 50, &v))) return rc;
  a->max_commit_bytes = v;
  return 0;
}
