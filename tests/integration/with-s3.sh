#!/bin/bash
# Runs a command with the environment of the S3 test server in DIR:
#   tests/integration/with-s3.sh DIR COMMAND [ARGS...]
set -euo pipefail
dir=$1; shift
here=$(cd "$(dirname "$0")/../.." && pwd)
env_text=$("$here/scripts/s3-server.sh" env --dir "$dir")
eval "$env_text"
exec "$@"
