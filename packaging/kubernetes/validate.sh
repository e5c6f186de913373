#!/usr/bin/env bash
# Validates the Kubernetes manifests: generated copies of alerts/ and dashboards/ up to date,
# every object against the Kubernetes and prometheus-operator schemas, and (given a binary) the
# inferprobe configs in the ConfigMaps with check-config.
#
#   packaging/kubernetes/validate.sh [--inferprobe=target/debug/inferprobe]
#
# Installs its validators from PyPI (pinned) when missing; works offline once installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."

python=${PYTHON:-python3}
requirements=(
  "kubernetes-validate==1.37.0"
  "cloudcoil-models-prometheus-operator==0.80.1.0"
  "PyYAML>=6"
)
if ! "$python" - <<'PY' 2>/dev/null
import importlib.metadata as m
assert m.version("kubernetes-validate") == "1.37.0"
assert m.version("cloudcoil-models-prometheus-operator") == "0.80.1.0"
import yaml  # noqa: F401
PY
then
  echo "Installing ${requirements[*]}"
  "$python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
fi

args=()
for arg in "$@"; do
  case "$arg" in
    --inferprobe=*) args+=(--inferprobe "${arg#--inferprobe=}") ;;
    *) echo "usage: $0 [--inferprobe=BINARY]" >&2; exit 2 ;;
  esac
done

"$python" "$here/generate.py" --check
echo "ok: generated PrometheusRule and dashboard ConfigMaps are up to date"
"$python" "$here/validate.py" "${args[@]+"${args[@]}"}"
echo "PASS: Kubernetes manifests"
