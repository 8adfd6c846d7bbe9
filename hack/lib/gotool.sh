# build_go_tool NAME MODDIR PACKAGE PREFIX VERSION: builds a Go command from modules (no binary downloads),
# the way hack/k8s/build.sh builds the control plane. MODDIR's go.mod and go.sum pin PACKAGE and its
# dependencies. The binary is cached under ~/.cache/rostersync/PREFIX-VERSION-<key>/bin/NAME, the key
# hashing VERSION, the Go version, go.mod and go.sum; prints that bin directory on stdout. A warm cache returns
# at once. Source it; don't run it.
build_go_tool() {
  local name="$1" moddir="$2" package="$3" prefix="$4" version="$5"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="-mod=mod" CGO_ENABLED=0
  command -v go >/dev/null || { echo "build_go_tool: Go is required (go 1.26+) to build $name" >&2; return 1; }
  local key cache bin
  key="$( (echo "$version $(go env GOVERSION)"; cat "$moddir/go.mod" "$moddir/go.sum") | sha256sum | cut -c1-16)"
  cache="${ROSTERSYNC_CACHE:-$HOME/.cache/rostersync}/$prefix-$version-$key"
  bin="$cache/bin"
  if [ -x "$bin/$name" ]; then echo "$bin"; return 0; fi
  mkdir -p "$bin"
  # A private Go build cache, deleted once the tool is built (kept after a failure, so a retry resumes).
  echo "build_go_tool: building $name ($prefix $version; cold: minutes on 2 cores)" >&2
  (cd "$moddir" && GOCACHE="$cache/go-build" go build -trimpath -ldflags "-s -w" \
    -o "$bin/$name.tmp" "$package" >&2) && mv "$bin/$name.tmp" "$bin/$name"
  [ -x "$bin/$name" ] || { echo "build_go_tool: $name is missing in $bin" >&2; return 1; }
  rm -rf "$cache/go-build"
  echo "$bin"
}
