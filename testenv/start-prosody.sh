#!/usr/bin/env bash
# Start a throwaway Prosody on loopback with users and the bridge's component
# port, installing Prosody from Debian first if it is missing. Idempotent per
# XMPP_DIR. Prints the pid on stdout; everything else goes to stderr.
#
#   XMPP_DIR                   state dir                       default .local/xmpp
#   XMPP_BIND                  listen address                  127.0.0.1
#   XMPP_DOMAIN                the users' domain               xmpp.test
#   XMPP_C2S_PORT              client port                     15222
#   XMPP_COMPONENT_PORT        component port                  15347
#   XMPP_COMPONENT_DOMAIN      the bridge's domain             matrix.$XMPP_DOMAIN
#   XMPP_COMPONENT_SECRET      component secret                componentsecret
#   XMPP_MUC_DOMAIN            Prosody's own MUC service (with muc_mam)   conference.$XMPP_DOMAIN
#   XMPP_USERS                 "user:password ..." created at start   "alice:alicepw bob:bobpw"
#   XMPP_LOG_LEVEL             info, or debug for every stanza        info
#   XMPP_EXTRA_DOMAIN          a second user domain, e.g. to test domain lists   (none)
#   XMPP_EXTRA_USERS           "user:password ..." on the second domain          ""
#   XMPP_EXTRA_COMPONENTS      "domain:secret ..." more external components, e.g. a second
#                              bridge (shard) on the same component port                 ""
#   XMPP_CLIENT_MODULES=1      what desktop and mobile clients ask for first: PEP and bookmarks,
#                              vCard4, message archive, carbons, stream management, blocking,
#                              and HTTP file sharing (upload.$XMPP_DOMAIN) on XMPP_HTTP_PORT  0
#   XMPP_HTTP_PORT             loopback HTTP port for file sharing                 15280
#   XMPP_S2S_PORT              s2s port; empty: no s2s (the default)               ""
#   XMPP_S2S_ROUTES            "domain=ip:port ..." peers reached without DNS; a domain covers its
#                              subdomains (mod_s2s_static_routes in prosody-plugins/)   ""
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
XMPP_DIR=${XMPP_DIR:-$HERE/../.local/xmpp}
XMPP_BIND=${XMPP_BIND:-127.0.0.1}
XMPP_DOMAIN=${XMPP_DOMAIN:-xmpp.test}
XMPP_C2S_PORT=${XMPP_C2S_PORT:-15222}
XMPP_COMPONENT_PORT=${XMPP_COMPONENT_PORT:-15347}
XMPP_COMPONENT_DOMAIN=${XMPP_COMPONENT_DOMAIN:-matrix.$XMPP_DOMAIN}
XMPP_COMPONENT_SECRET=${XMPP_COMPONENT_SECRET:-componentsecret}
XMPP_MUC_DOMAIN=${XMPP_MUC_DOMAIN:-conference.$XMPP_DOMAIN}
XMPP_USERS=${XMPP_USERS:-"alice:alicepw bob:bobpw"}
XMPP_LOG_LEVEL=${XMPP_LOG_LEVEL:-info}
XMPP_START_TIMEOUT=${XMPP_START_TIMEOUT:-30}
XMPP_EXTRA_DOMAIN=${XMPP_EXTRA_DOMAIN:-}
XMPP_EXTRA_USERS=${XMPP_EXTRA_USERS:-}
XMPP_EXTRA_COMPONENTS=${XMPP_EXTRA_COMPONENTS:-}
XMPP_CLIENT_MODULES=${XMPP_CLIENT_MODULES:-0}
XMPP_HTTP_PORT=${XMPP_HTTP_PORT:-15280}
XMPP_S2S_PORT=${XMPP_S2S_PORT:-}
XMPP_S2S_ROUTES=${XMPP_S2S_ROUTES:-}

log() { echo "start-prosody: $*" >&2; }
mkdir -p "$XMPP_DIR" && XMPP_DIR=$(cd "$XMPP_DIR" && pwd)
cfg="$XMPP_DIR/prosody.cfg.lua"
pidfile="$XMPP_DIR/prosody.pid"
port_open() { (exec 3<> "/dev/tcp/$XMPP_BIND/$1") 2> /dev/null; }

if [[ -f $pidfile ]] && pid=$(<"$pidfile") && grep -qs "$cfg" "/proc/$pid/cmdline"; then
  log "already running"; echo "$pid"; exit 0
fi

if ! command -v prosody > /dev/null; then
  log "installing prosody"
  apt-get install -y -q prosody > /dev/null 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q prosody > /dev/null; }
fi

mkdir -p "$XMPP_DIR/data" "$XMPP_DIR/certs"
extra_host=""
[[ -n $XMPP_EXTRA_DOMAIN ]] && extra_host="VirtualHost \"$XMPP_EXTRA_DOMAIN\""
extra_components=""
for c in $XMPP_EXTRA_COMPONENTS; do
  extra_components+="Component \"${c%%:*}\"\n  component_secret = \"${c#*:}\"\n"
done
# The tests keep to the few modules they need, so that nothing else (carbons,
# archives) changes what a client receives; the local stack loads what real
# clients expect.
modules='"vcard"' http_ports="" upload="" ports=("$XMPP_C2S_PORT" "$XMPP_COMPONENT_PORT")
if [[ $XMPP_CLIENT_MODULES == 1 ]]; then
  modules='"vcard4", "vcard_legacy", "pep", "bookmarks", "private", "mam", "carbons", "smacks", "blocklist", "csi_simple", "time", "version"'
  http_ports=$XMPP_HTTP_PORT ports+=("$XMPP_HTTP_PORT")
  upload="Component \"upload.$XMPP_DOMAIN\" \"http_file_share\"\\n  http_external_url = \"http://$XMPP_BIND:$XMPP_HTTP_PORT/\"\\n  http_file_share_size_limit = 50*1024*1024"
fi
disabled='"s2s", "tls", "offline"' s2s_settings=""
if [[ -n $XMPP_S2S_PORT ]]; then
  # Federation with a peer on loopback: plain TCP, dialback, static routes.
  disabled='"tls", "offline"'
  # Incoming s2s is rate-limited as in Prosody's default config, with the
  # peer's domain, its bridge's component and its MUC service exempt, as
  # the README tells operators of two islands to do.
  modules+=', "dialback", "s2s_static_routes", "limits"'
  ports+=("$XMPP_S2S_PORT")
  routes="" unlimited=""
  for r in $XMPP_S2S_ROUTES; do
    routes+="[\"${r%%=*}\"] = \"${r#*=}\", "
    unlimited+="\"${r%%=*}\", \"matrix.${r%%=*}\", \"conference.${r%%=*}\", "
  done
  s2s_settings="plugin_paths = { \"$HERE/prosody-plugins\" }\ns2s_require_encryption = false\ns2s_secure_auth = false\nuse_ipv6 = false\ns2s_timeout = 10\ns2s_static_routes = { $routes}"
  s2s_settings+="\nlimits = { s2sin = { rate = \"30kb/s\", burst = \"2s\" } }\nunlimited_jids = { $unlimited}"
fi
sed -e "s|@EXTRA_HOST@|$extra_host|g" -e "s|@EXTRA_COMPONENTS@|$extra_components|g" -e "s|@MODULES@|$modules|g" -e "s|@HTTP_PORTS@|$http_ports|g" \
    -e "s|@UPLOAD_COMPONENT@|$upload|g" -e "s|@DIR@|$XMPP_DIR|g" -e "s|@BIND@|$XMPP_BIND|g" -e "s|@DOMAIN@|$XMPP_DOMAIN|g" \
    -e "s|@C2S_PORT@|$XMPP_C2S_PORT|g" -e "s|@COMPONENT_PORT@|$XMPP_COMPONENT_PORT|g" \
    -e "s|@COMPONENT_DOMAIN@|$XMPP_COMPONENT_DOMAIN|g" -e "s|@COMPONENT_SECRET@|$XMPP_COMPONENT_SECRET|g" \
    -e "s|@LOG_LEVEL@|$XMPP_LOG_LEVEL|g" -e "s|@MUC_DOMAIN@|$XMPP_MUC_DOMAIN|g" \
    -e "s|@DISABLED@|$disabled|g" -e "s|@S2S_PORT@|$XMPP_S2S_PORT|g" -e "s|@S2S_SETTINGS@|$s2s_settings|g" \
    "$HERE/prosody.cfg.lua.tmpl" > "$cfg"
for up in $XMPP_USERS; do
  prosodyctl --config "$cfg" register "${up%%:*}" "$XMPP_DOMAIN" "${up#*:}" > /dev/null 2>&1
done
for up in $XMPP_EXTRA_USERS; do
  prosodyctl --config "$cfg" register "${up%%:*}" "$XMPP_EXTRA_DOMAIN" "${up#*:}" > /dev/null 2>&1
done

for p in "${ports[@]}"; do
  ! port_open "$p" || { log "port $p already in use"; exit 1; }
done
nohup prosody --config "$cfg" -F > "$XMPP_DIR/stdout.log" 2>&1 &
pid=$!
echo "$pid" > "$pidfile"
for ((i = 0; i < XMPP_START_TIMEOUT * 10; i++)); do
  if port_open "$XMPP_C2S_PORT" && port_open "$XMPP_COMPONENT_PORT"; then
    log "ready: c2s $XMPP_BIND:$XMPP_C2S_PORT, component $XMPP_COMPONENT_DOMAIN at $XMPP_BIND:$XMPP_COMPONENT_PORT, MUC $XMPP_MUC_DOMAIN"
    echo "$pid"; exit 0
  fi
  kill -0 "$pid" 2> /dev/null || { cat "$XMPP_DIR/stdout.log" >&2; log "prosody exited"; exit 1; }
  sleep 0.1
done
log "not ready after ${XMPP_START_TIMEOUT}s"; exit 1
