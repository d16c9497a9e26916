#!/usr/bin/env bash
# Start a throwaway Dendrite homeserver on loopback, installing it first if it
# is missing (built once, cached under ~/.cache). Idempotent per HS_DIR.
# Prints the pid on stdout; everything else goes to stderr.
#
#   HS_DIR           state dir (databases, config, log)      default .local/hs
#   HS_BIND HS_PORT  client API listener                     127.0.0.1 18008
#   HS_SERVER_NAME   server_name                             hs.test
#   HS_REG_SECRET    shared secret for create-account        testsecret
#   HS_LOG_LEVEL     dendrite log level                      warn
#   HS_FRESH=1       delete the databases before starting
#   HS_DATABASE      a PostgreSQL URI: every Dendrite component keeps its
#                    tables there, in one pool (empty: an SQLite file each);
#                    HS_FRESH does not empty it: name a new database instead
#   HS_QUEUE_MEMORY  1: keep Dendrite's internal queue (JetStream) in memory,
#                    faster, but events not yet pushed to the appservice are
#                    lost when it restarts                    0
#   AS_REGISTRATION  the bridge's registration file          (required); several files,
#                    space-separated, for several bridges (shards)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DENDRITE_VERSION=${DENDRITE_VERSION:-v0.13.8}
DENDRITE_BIN_DIR=${DENDRITE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dendrite-$DENDRITE_VERSION/bin}
HS_DIR=${HS_DIR:-$HERE/../.local/hs}
HS_BIND=${HS_BIND:-127.0.0.1}
HS_PORT=${HS_PORT:-18008}
HS_SERVER_NAME=${HS_SERVER_NAME:-hs.test}
HS_REG_SECRET=${HS_REG_SECRET:-testsecret}
HS_LOG_LEVEL=${HS_LOG_LEVEL:-warn}
HS_FRESH=${HS_FRESH:-0}
HS_QUEUE_MEMORY=${HS_QUEUE_MEMORY:-0}
HS_DATABASE=${HS_DATABASE:-}
HS_START_TIMEOUT=${HS_START_TIMEOUT:-60}
AS_REGISTRATION=${AS_REGISTRATION:?AS_REGISTRATION must name the bridge registration file}

log() { echo "start-homeserver: $*" >&2; }
mkdir -p "$HS_DIR" && HS_DIR=$(cd "$HS_DIR" && pwd)
url="http://$HS_BIND:$HS_PORT"
pidfile="$HS_DIR/dendrite.pid"

if [[ -f $pidfile ]] && pid=$(<"$pidfile") && grep -qs "$HS_DIR/dendrite.yaml" "/proc/$pid/cmdline"; then
  log "already running ($url)"; echo "$pid"; exit 0
fi

"$HERE/install-dendrite.sh" >&2

[[ $HS_FRESH == 1 ]] && rm -rf "$HS_DIR"/*.db "$HS_DIR"/media
[[ -f $HS_DIR/matrix_key.pem ]] || "$DENDRITE_BIN_DIR/generate-keys" --private-key "$HS_DIR/matrix_key.pem" > /dev/null
sed -e "s|@DIR@|$HS_DIR|g" -e "s|@SERVER_NAME@|$HS_SERVER_NAME|g" \
    -e "s|@SHARED_SECRET@|$HS_REG_SECRET|g" -e "s|@LOG_LEVEL@|$HS_LOG_LEVEL|g" \
    -e "s|@QUEUE_MEMORY@|$([[ $HS_QUEUE_MEMORY == 1 ]] && echo true || echo false)|g" \
    "$HERE/dendrite.yaml.tmpl" > "$HS_DIR/dendrite.yaml"
if [[ -n $HS_DATABASE ]]; then
  # Dendrite's global pool serves every component that names no database
  # of its own (its monolith mode).
  uri=${HS_DATABASE//&/\\&}
  sed -i -E -e 's|database: \{ connection_string: "file:[^"]*" \}|database: {}|' \
    -e "s|^global:\$|global:\n  database: { connection_string: \"$uri\", max_open_conns: 50, max_idle_conns: 10 }|" \
    "$HS_DIR/dendrite.yaml"
fi
# The first registration keeps its name; more (shards) get a number.
regs="" n=0
for r in $AS_REGISTRATION; do
  name=registration.yaml; ((n > 0)) && name=registration-$n.yaml
  cp "$r" "$HS_DIR/$name"; regs+="${regs:+, }$HS_DIR/$name"; n=$((n + 1))
done
sed -i "s|@REGISTRATIONS@|$regs|g" "$HS_DIR/dendrite.yaml"

! curl -sf "$url/_matrix/client/versions" > /dev/null || { log "something already answers on $url"; exit 1; }
cd "$HS_DIR"
nohup "$DENDRITE_BIN_DIR/dendrite" -config "$HS_DIR/dendrite.yaml" -http-bind-address "$HS_BIND:$HS_PORT" \
  -really-enable-open-registration > "$HS_DIR/dendrite.log" 2>&1 &
pid=$!
echo "$pid" > "$pidfile"
for ((i = 0; i < HS_START_TIMEOUT * 10; i++)); do
  if curl -sf "$url/_matrix/client/versions" > /dev/null; then
    log "ready at $url (server_name $HS_SERVER_NAME, log $HS_DIR/dendrite.log)"; echo "$pid"; exit 0
  fi
  kill -0 "$pid" 2> /dev/null || { tail -20 "$HS_DIR/dendrite.log" >&2; log "dendrite exited"; exit 1; }
  sleep 0.1
done
log "not ready after ${HS_START_TIMEOUT}s"; tail -20 "$HS_DIR/dendrite.log" >&2; exit 1
