#!/usr/bin/env bash
# Build Dendrite (the test homeserver) once into the cache. Its SQLite driver
# needs cgo, so a C compiler must be present; the bridge itself does not.
set -euo pipefail
DENDRITE_VERSION=${DENDRITE_VERSION:-v0.13.8}
DENDRITE_BIN_DIR=${DENDRITE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dendrite-$DENDRITE_VERSION/bin}
bins=(dendrite generate-keys create-account)
for b in "${bins[@]}"; do [[ -x $DENDRITE_BIN_DIR/$b ]] || missing=1; done
[[ -n ${missing:-} ]] || exit 0
if ! command -v gcc > /dev/null; then
  echo "install-dendrite: installing gcc (Dendrite's SQLite driver needs cgo)" >&2
  apt-get install -y -q gcc libc6-dev > /dev/null 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q gcc libc6-dev > /dev/null; }
fi
echo "install-dendrite: building dendrite $DENDRITE_VERSION into $DENDRITE_BIN_DIR (a few minutes the first time)" >&2
mkdir -p "$DENDRITE_BIN_DIR"
GOBIN=$DENDRITE_BIN_DIR CGO_ENABLED=1 GOFLAGS= go install \
  $(printf "github.com/matrix-org/dendrite/cmd/%s@$DENDRITE_VERSION " "${bins[@]}")
