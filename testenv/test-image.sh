#!/usr/bin/env bash
# Builds the container image from the Dockerfile and runs the three steps the
# README documents (write the config, write the registration, run), against a
# throwaway Dendrite and Prosody on loopback: the image must run as non-root,
# and /health must answer inside the container and /ready from outside.
#
# Uses docker when its engine answers, else podman (installed from Debian if
# missing). Where no engine can run a container, it says why and exits 0:
# only this step is skipped. Where the registry for the Dockerfile's base
# images cannot be reached, equivalent local images are made from Debian's
# packages (debootstrap, cached under ~/.cache/mxpp-image) and the host's Go.
#
#   IMAGE_TEST=0     skip this step       IMAGE_KEEP=1   keep the work dir
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/mxpp-image
log() { echo "test-image: $*" >&2; }
skip() { log "SKIPPED: $*"; exit 0; }
[[ ${IMAGE_TEST:-1} != 0 ]] || skip "IMAGE_TEST=0"

WORK=$(mktemp -d /tmp/mxpp-image.XXXXXX)
engine=() run_opts=() ctr="" vol=""
cleanup() {
  [[ -n $ctr ]] && "${engine[@]}" rm -f "$ctr" > /dev/null 2>&1 || true
  [[ -n $vol ]] && "${engine[@]}" volume rm -f "$vol" > /dev/null 2>&1 || true
  "$HERE/stop.sh" "$WORK/hs" "$WORK/xmpp" || true
  [[ ${IMAGE_KEEP:-0} == 1 ]] && log "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

# 1. An engine that can run a container: a static binary in an image of its
#    own is enough to find out.
probe=$WORK/probe
mkdir -p "$probe/bin"
CGO_ENABLED=0 go build -tags goolm -o "$probe/bin/mxpp" "$ROOT/cmd/mxpp"
tar -C "$probe" -cf "$WORK/probe.tar" bin
can_run() { # engine args...: imports the probe and runs it
  "$@" import "$WORK/probe.tar" localhost/mxpp-probe:latest > /dev/null 2>&1 &&
    "$@" run --rm "${run_opts[@]}" localhost/mxpp-probe:latest /bin/mxpp --version > /dev/null 2>&1
}
if command -v docker > /dev/null && docker info > /dev/null 2>&1 && can_run docker; then
  engine=(docker)
else
  if ! command -v podman > /dev/null && command -v apt-get > /dev/null; then
    log "installing podman"
    apt-get install -y -q podman runc > /dev/null 2>&1 ||
      { apt-get update -q > /dev/null && apt-get install -y -q podman runc > /dev/null 2>&1; } || true
  fi
  command -v podman > /dev/null || skip "no container engine: docker's engine does not answer and podman is not installed"
  if can_run podman; then
    engine=(podman)
  else
    # Where the default runtime cannot set resource limits or use the
    # machine's cgroups (a container inside a container), runc with
    # cgroupfs and no default ulimits often can.
    printf '[containers]\ndefault_ulimits = []\n' > "$WORK/containers.conf"
    export CONTAINERS_CONF=$WORK/containers.conf
    engine=(podman --runtime runc --cgroup-manager cgroupfs)
    can_run "${engine[@]}" || skip "podman cannot run a container here: $(podman run --rm localhost/mxpp-probe:latest /bin/mxpp --version 2>&1 | tail -1)"
    log "podman runs containers with runc and cgroupfs, without default ulimits"
  fi
fi
log "engine: ${engine[*]}"
E=("${engine[@]}")

# 2. The Dockerfile's base images: pulled, or made locally.
base_images() {
  local slim=docker.io/library/debian:bookworm-slim golang=docker.io/library/golang:1.26-bookworm
  if "${E[@]}" image inspect "$slim" > /dev/null 2>&1 && "${E[@]}" image inspect "$golang" > /dev/null 2>&1; then return 0; fi
  if "${E[@]}" pull -q "$slim" > /dev/null 2>&1 && "${E[@]}" pull -q "$golang" > /dev/null 2>&1; then return 0; fi
  log "the base images cannot be pulled: making them from Debian's packages"
  command -v debootstrap > /dev/null || apt-get install -y -q debootstrap > /dev/null 2>&1
  mkdir -p "$CACHE"
  if [[ ! -s $CACHE/bookworm.tar ]]; then
    rm -rf "$CACHE/rootfs"
    debootstrap --variant=minbase bookworm "$CACHE/rootfs" http://deb.debian.org/debian > "$CACHE/debootstrap.log" 2>&1 ||
      { tail -5 "$CACHE/debootstrap.log" >&2; return 1; }
    rm -rf "$CACHE/rootfs/var/cache/apt/archives"/*.deb "$CACHE/rootfs/var/lib/apt/lists"/*
    tar -C "$CACHE/rootfs" -cf "$CACHE/bookworm.tar" . && rm -rf "$CACHE/rootfs"
  fi
  "${E[@]}" import --change 'CMD ["bash"]' "$CACHE/bookworm.tar" "$slim" > "$WORK/import.log" 2>&1 ||
    { cat "$WORK/import.log" >&2; return 1; }
  # golang: the same Debian with this machine's Go toolchain, and the CAs
  # this machine trusts (for the module proxy, behind whatever it is).
  local goroot
  goroot=$(go env GOROOT)
  mkdir -p "$WORK/golang/usr/local" "$WORK/golang/etc/ssl/certs"
  cp -a "$goroot" "$WORK/golang/usr/local/go"
  cp -L /etc/ssl/certs/ca-certificates.crt "$WORK/golang/etc/ssl/certs/"
  tar -C "$WORK/golang" -cf "$WORK/golang.tar" usr etc
  printf 'FROM %s\nADD golang.tar /\nENV PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GOPATH=/go GOTOOLCHAIN=local\n' \
    "$slim" > "$WORK/golang/Dockerfile"
  "${E[@]}" build -q --pull=never --network host -t "$golang" -f "$WORK/golang/Dockerfile" "$WORK" > /dev/null
}
base_images || skip "the Dockerfile's base images can neither be pulled nor made here"

# 3. The image, as the README builds it.
image=localhost/mxpp:test
log "building the image"
build_opts=(--network host)
[[ ${E[0]} == podman ]] && build_opts+=(--pull=never)
"${E[@]}" build -q "${build_opts[@]}" -t "$image" "$ROOT" > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; exit 1; }
size=$("${E[@]}" image inspect -f '{{.Size}}' "$image")
log "image size: $((size / 1000000)) MB"
user=$("${E[@]}" run --rm "${run_opts[@]}" --entrypoint id "$image" -u)
[[ $user != 0 ]] || { log "FAIL: the image runs as root"; exit 1; }

# 4. The three steps, on a named volume as in the README, with servers on
#    loopback (the container shares the host's network).
vol=mxpp-test-$$
"${E[@]}" volume create "$vol" > /dev/null
out=$("${E[@]}" run --rm "${run_opts[@]}" -v "$vol:/data" "$image" 2>&1) || { log "FAIL: step 1: $out"; exit 1; }
[[ $out == *"Wrote /data/config.yaml"* ]] || { log "FAIL: step 1 said: $out"; exit 1; }
data=$("${E[@]}" volume inspect -f '{{.Mountpoint}}' "$vol")
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2> /dev/null || shuf -i 20000-60000 -n 1; }
hs_port=$(port) as_port=$(port) c2s_port=$(port) comp_port=$(port)
sed -i -e "s|http://localhost:8008|http://127.0.0.1:$hs_port|" -e "s|domain: example.org|domain: hs.test|" \
  -e "s|http://localhost:29333|http://127.0.0.1:$as_port|" -e "s|port: 29333|port: $as_port|" \
  -e "s|localhost:5347|127.0.0.1:$comp_port|" -e "s|matrix.example.net|matrix.xmpp.test|" \
  -e "s|secret: change-me|secret: componentsecret|" "$data/config.yaml"
out=$("${E[@]}" run --rm "${run_opts[@]}" -v "$vol:/data" "$image" 2>&1) || { log "FAIL: step 2: $out"; exit 1; }
[[ -s $data/registration.yaml ]] || { log "FAIL: step 2 wrote no registration: $out"; exit 1; }
export HS_DIR=$WORK/hs XMPP_DIR=$WORK/xmpp HS_PORT=$hs_port XMPP_C2S_PORT=$c2s_port XMPP_COMPONENT_PORT=$comp_port
"$HERE/start-prosody.sh" > /dev/null
AS_REGISTRATION=$data/registration.yaml "$HERE/start-homeserver.sh" > /dev/null
ctr=$("${E[@]}" run -d "${run_opts[@]}" --network host -v "$vol:/data" "$image")
for ((i = 0; i < 300; i++)); do
  curl -sf "http://127.0.0.1:$as_port/ready" > /dev/null && break
  [[ $("${E[@]}" inspect -f '{{.State.Running}}' "$ctr") == true ]] || break
  sleep 0.1
done
if ! curl -sf "http://127.0.0.1:$as_port/ready" > /dev/null; then
  "${E[@]}" logs "$ctr" 2>&1 | tail -20 >&2
  log "FAIL: the bridge in the container did not become ready"; exit 1
fi
"${E[@]}" exec "$ctr" /usr/local/bin/mxpp -healthcheck "http://127.0.0.1:$as_port/health" ||
  { log "FAIL: /health does not answer inside the container"; exit 1; }
log "passed: built, non-root (uid $user), $((size / 1000000)) MB, config and registration written, ready, /health answers inside"
