# Shared by scripts/run-local and scripts/test: make sure the tools exist.
# Sourced, not run. Everything downloaded is cached under ~/.cache.

GO_VERSION=1.26.8
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { echo "==> $*" >&2; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" > /dev/null 2>&1 || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  say "installing ${missing[*]}"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y -q "${missing[@]}" > /dev/null 2>&1 ||
    { "${sudo[@]}" apt-get update -q > /dev/null && "${sudo[@]}" apt-get install -y -q "${missing[@]}" > /dev/null; }
}

# ensure_go puts a Go toolchain of at least 1.21 on PATH; go.mod's go line
# then makes it fetch the exact version the module needs.
ensure_go() {
  if command -v go > /dev/null; then
    local minor
    minor=$(go env GOVERSION 2> /dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
    [[ -n $minor && $minor -ge 21 ]] && return 0
  fi
  local dir="$CACHE/go-$GO_VERSION"
  if [[ ! -x $dir/go/bin/go ]]; then
    say "installing Go $GO_VERSION into $dir"
    mkdir -p "$dir"
    curl -fsSL "https://go.dev/dl/go$GO_VERSION.linux-$(dpkg --print-architecture).tar.gz" | tar -xz -C "$dir"
  fi
  export PATH="$dir/go/bin:$PATH"
}

# ensure_tools installs what the bridge's tests and the local stack need:
# curl for the start scripts, a C compiler for Dendrite's SQLite driver and
# Go's race detector, and Prosody.
ensure_tools() {
  command -v apt-get > /dev/null || { say "not a Debian-like system: install curl, gcc, prosody, ejabberd and Go yourself"; return 0; }
  apt_install ca-certificates curl gcc libc6-dev prosody
  ensure_go
  export GOMODCACHE=${GOMODCACHE:-$(go env GOMODCACHE)}
}
