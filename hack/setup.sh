# Installs the machine-level prerequisites of the tests and the demo (idempotent). Source it, then
# call ensure_prerequisites. Everything else (Postgres, the control plane) is started by its own script.
ensure_prerequisites() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v runuser >/dev/null || missing+=(util-linux)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  # The status UI's browser test (tests/ui.rs): Debian's headless-capable Chromium.
  command -v chromium >/dev/null || missing+=(chromium)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    apt-get install -y -qq "${missing[@]}" >&2
  fi
  # The SMTP tests' server (hack/smtp-sink.py).
  if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    echo "setup.sh: installing aiosmtpd (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check aiosmtpd >&2
  fi
  command -v go >/dev/null || { echo "setup.sh: Go 1.26+ is required to build the control plane" >&2; return 1; }
  command -v cargo >/dev/null || { echo "setup.sh: Rust (cargo) is required" >&2; return 1; }
}
