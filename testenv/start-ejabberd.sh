#!/usr/bin/env bash
# Start a throwaway ejabberd (Debian's 23.01) on loopback with users and the
# bridge's component port, installing it from Debian first if it is missing.
# A drop-in for start-prosody.sh: the same variables, the same pid-on-stdout
# convention, idempotent per XMPP_DIR, stopped by stop.sh. The Debian
# service is never started; the Erlang VM runs as a plain process, not a
# distributed node (no epmd, no cookie, no port besides c2s and component).
#
#   XMPP_DIR                   state dir (config, Mnesia DB, logs)   default .local/ejabberd
#   XMPP_BIND                  listen address                  127.0.0.1
#   XMPP_DOMAIN                the users' domain               xmpp.test
#   XMPP_C2S_PORT              client port                     15222
#   XMPP_COMPONENT_PORT        component port                  15347
#   XMPP_COMPONENT_DOMAIN      the bridge's domain             matrix.$XMPP_DOMAIN
#   XMPP_COMPONENT_SECRET      component secret                componentsecret
#   XMPP_MUC_DOMAIN            ejabberd's own MUC service      conference.$XMPP_DOMAIN
#   XMPP_USERS                 "user:password ..." (re)registered at start   "alice:alicepw bob:bobpw"
#   XMPP_LOG_LEVEL             info, or debug for every stanza        info
#   XMPP_EXTRA_DOMAIN          a second user domain, e.g. to test domain lists   (none)
#   XMPP_EXTRA_USERS           "user:password ..." on the second domain          ""
#   XMPP_FRESH=1               delete the Mnesia DB (users, rooms) first          0
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
XMPP_DIR=${XMPP_DIR:-$HERE/../.local/ejabberd}
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
XMPP_FRESH=${XMPP_FRESH:-0}

log() { echo "start-ejabberd: $*" >&2; }
mkdir -p "$XMPP_DIR" && XMPP_DIR=$(cd "$XMPP_DIR" && pwd)
cfg="$XMPP_DIR/ejabberd.yml"
pidfile="$XMPP_DIR/ejabberd.pid"
ready="$XMPP_DIR/ready"
port_open() { (exec 3<> "/dev/tcp/$XMPP_BIND/$1") 2> /dev/null; }

if [[ -f $pidfile ]] && pid=$(<"$pidfile") && grep -qs "$cfg" "/proc/$pid/cmdline"; then
  log "already running"; echo "$pid"; exit 0
fi

# Debian's postinst starts the system service (every interface, six ports and
# epmd) unless policy-rc.d forbids it: add one for the install if missing.
if ! dpkg-query -W -f '${Status}' ejabberd 2> /dev/null | grep -q 'ok installed'; then
  log "installing ejabberd"
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -q ejabberd > /dev/null 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q ejabberd > /dev/null; }
fi
# Where ejabberdctl points the VM for ejabberd's own libraries.
erl_libs=$(sed -n "s/^ERL_LIBS='\(.*\)'$/\1/p" /usr/sbin/ejabberdctl)
[[ -n $erl_libs ]] || { log "cannot find ERL_LIBS in /usr/sbin/ejabberdctl"; exit 1; }

[[ $XMPP_FRESH != 1 ]] || rm -rf "$XMPP_DIR/db"
mkdir -p "$XMPP_DIR/db" "$XMPP_DIR/logs"
extra_host=""
[[ -n $XMPP_EXTRA_DOMAIN ]] && extra_host="  - \"$XMPP_EXTRA_DOMAIN\""
sed -e "s|@EXTRA_HOST@|$extra_host|g" -e "s|@DIR@|$XMPP_DIR|g" -e "s|@BIND@|$XMPP_BIND|g" -e "s|@DOMAIN@|$XMPP_DOMAIN|g" \
    -e "s|@C2S_PORT@|$XMPP_C2S_PORT|g" -e "s|@COMPONENT_PORT@|$XMPP_COMPONENT_PORT|g" \
    -e "s|@COMPONENT_DOMAIN@|$XMPP_COMPONENT_DOMAIN|g" -e "s|@COMPONENT_SECRET@|$XMPP_COMPONENT_SECRET|g" \
    -e "s|@MUC_DOMAIN@|$XMPP_MUC_DOMAIN|g" -e "s|@LOG_LEVEL@|$XMPP_LOG_LEVEL|g" \
    "$HERE/ejabberd.yml.tmpl" > "$cfg"

for p in "$XMPP_C2S_PORT" "$XMPP_COMPONENT_PORT"; do
  ! port_open "$p" || { log "port $p already in use"; exit 1; }
done
# Users as "user:password:domain"; the -eval below (re)registers them once
# ejabberd is up (passwords reset), then writes the VM's pid to $ready; a
# failure there halts the VM.
users=()
for up in $XMPP_USERS; do users+=("$up:$XMPP_DOMAIN"); done
for up in $XMPP_EXTRA_USERS; do users+=("$up:$XMPP_EXTRA_DOMAIN"); done
boot='lists:foreach(fun(Entry) ->
    [U, P, D] = [unicode:characters_to_binary(X) || X <- string:split(Entry, ":", all)],
    case ejabberd_auth:try_register(U, D, P) of
      ok -> ok;
      {error, exists} -> ok = ejabberd_auth:set_password(U, D, P);
      Err -> io:format(standard_error, "register ~ts@~ts: ~p~n", [U, D, Err]), halt(1)
    end
  end, string:lexemes(os:getenv("EJ_BOOT_USERS"), " ")),
ok = file:write_file(os:getenv("EJ_BOOT_READY"), os:getpid()).'
rm -f "$ready"
cd "$XMPP_DIR"
# `erl` execs into beam.smp, so $! is the pid that listens.
EJ_BOOT_USERS="${users[*]}" EJ_BOOT_READY=$ready \
ERL_LIBS=$erl_libs ERL_CRASH_DUMP="$XMPP_DIR/logs/erl_crash.dump" ERL_CRASH_DUMP_BYTES=0 \
ERL_MAX_PORTS=32000 ERL_MAX_ETS_TABLES=1400 \
  nohup erl -noinput -noshell +K true +P 250000 \
    -mnesia dir "\"$XMPP_DIR/db\"" \
    -ejabberd config "\"$cfg\"" log_path "\"$XMPP_DIR/logs/ejabberd.log\"" quiet true \
    -s ejabberd -eval "$boot" > "$XMPP_DIR/stdout.log" 2>&1 &
pid=$!
echo "$pid" > "$pidfile"
for ((i = 0; i < XMPP_START_TIMEOUT * 10; i++)); do
  if [[ -s $ready ]] && port_open "$XMPP_C2S_PORT" && port_open "$XMPP_COMPONENT_PORT"; then
    log "ready: c2s $XMPP_BIND:$XMPP_C2S_PORT, component $XMPP_COMPONENT_DOMAIN at $XMPP_BIND:$XMPP_COMPONENT_PORT, MUC $XMPP_MUC_DOMAIN"
    echo "$pid"; exit 0
  fi
  kill -0 "$pid" 2> /dev/null || { tail -n 40 "$XMPP_DIR/stdout.log" "$XMPP_DIR/logs/error.log" >&2 2> /dev/null; log "ejabberd exited"; exit 1; }
  sleep 0.1
done
log "not ready after ${XMPP_START_TIMEOUT}s (see $XMPP_DIR/logs/)"; exit 1
