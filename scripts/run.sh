#!/usr/bin/env bash
# scripts/run.sh BUILD_DIR — the main job on the embedded default.
# Until the metastore and pagestore land this prints the version and says
# what `make run` will start; the server issue replaces this body with
# `quire server --data ./data`.
set -euo pipefail
Q="$1/quire"
"$Q" version
echo "quire: the servers are not built yet. Once the metastore and pagestore land,"
echo "       'make run' starts 'quire server --data ./quire-data' (both services on the"
echo "       local filesystem, listening on 127.0.0.1) and prints where they listen."
echo "       Until then, try: $Q --help   or   $Q gid new --type volume"
