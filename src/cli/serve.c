/* cli/serve.c — helpers shared by the service commands (see serve.h). */
#include "cli/serve.h"

#include "cli/cli.h"

int cli_serve_number(const char *cmd, const struct quire_cfg_opt *opts, size_t n, const char *name,
                     unsigned long long max, unsigned long long *out) {
  const char *v = quire__cfg_get(opts, n, name);
  if (!v || cli_parse_u64(v, out) != 0 || *out > max)
    return cli_usage_error(cmd, "bad value '%s' for --%s", v ? v : "", name);
  return 0;
}
