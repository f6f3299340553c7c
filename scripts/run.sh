#!/usr/bin/env bash
# scripts/run.sh BUILD_DIR — the main job on the embedded default: runs
# `quire server --data ./quire-data` in the foreground (object store in
# ./quire-data/objects, catalogs beside it, services on 127.0.0.1). It prints
# where each service listens; Ctrl-C stops it gracefully. Extra settings come
# from QUIRE_* environment variables (see `quire server --help`).
set -euo pipefail
Q="$1/quire"
"$Q" version
exec "$Q" server --data "${QUIRE_DATA:-./quire-data}"
