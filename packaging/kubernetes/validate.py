#!/usr/bin/env python3
"""Validates the Kubernetes manifests. Run through validate.sh, which installs the validators.

- Core objects against the Kubernetes OpenAPI schemas bundled by kubernetes-validate, strictly
  (unknown fields are errors), for the oldest supported and the newest bundled version.
- ServiceMonitor and PrometheusRule against the prometheus-operator API models of
  cloudcoil-models-prometheus-operator (generated from the operator's CRDs); fields the models
  do not know are errors too.
- The inferprobe config in each overlay's ConfigMap with `inferprobe check-config`, when a binary
  is given (--inferprobe).
- That render.py, which the checks above use, agrees with `kubectl kustomize` (or `kustomize
  build`) where one is installed.
- First, that each validator rejects a known-bad object, so a validator that silently accepts
  everything cannot pass.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring_v1

import render

HERE = pathlib.Path(__file__).resolve().parent
OVERLAYS = ["overlays/gpu-node", "overlays/regional"]
EXTRA_FILES = ["base/secret.example.yaml"]
# Oldest supported (the StatefulSet pod-index label needs 1.28) and newest bundled.
K8S_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
CRD_MODELS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring_v1.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): monitoring_v1.PrometheusRule,
}


def unknown_fields(given, known, path=""):
    """Paths present in `given` but dropped by the model (`known` is the model's dump)."""
    if isinstance(given, dict):
        if not isinstance(known, dict):
            return [path or "."]
        out = []
        for key, value in given.items():
            if key not in known:
                out.append(f"{path}.{key}")
            else:
                out.extend(unknown_fields(value, known[key], f"{path}.{key}"))
        return out
    if isinstance(given, list) and isinstance(known, list):
        out = []
        for i, (g, k) in enumerate(zip(given, known)):
            out.extend(unknown_fields(g, k, f"{path}[{i}]"))
        return out
    return []


def validate_object(obj):
    """Problems with one object, as strings (empty when valid)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_MODELS:
        model = CRD_MODELS[key]
        try:
            parsed = model.model_validate(obj)
        except Exception as e:  # pydantic.ValidationError, reported whole
            return [str(e)]
        dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
        return [f"unknown field {p}" for p in unknown_fields(obj, dumped)]
    problems = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"Kubernetes {version}: {e.message} at {'.'.join(map(str, e.path))}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"Kubernetes {version}: no schema for {key}")
    return problems


def self_test():
    bad = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"}, "spec": {}},
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "x"},
            "spec": {"selector": {}, "endpoints": [{"port": "http", "interval": "soon"}]},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "x"},
            "spec": {"selector": {}, "endpoints": [{"port": "http", "intervall": "15s"}]},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "x"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A"}]}]},
        },
    ]
    for obj in bad:
        if not validate_object(obj):
            print(f"FAIL: the validators accept a bad {obj['kind']}: {obj['spec']}", file=sys.stderr)
            return False
    return True


def kustomize_command():
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def compare_with_kustomize(command, objects, overlay):
    """Problems where render.py's output differs from kustomize's."""
    run = subprocess.run([*command, str(HERE / overlay)], capture_output=True, text=True)
    if run.returncode != 0:
        return [f"{overlay}: {' '.join(command)}: {run.stderr.strip()}"]

    def key(obj):
        return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])

    theirs = {key(o): o for o in yaml.safe_load_all(run.stdout) if o}
    ours = {key(o): o for o in objects}
    if set(theirs) != set(ours):
        return [f"{overlay}: objects differ from kustomize's: {sorted(set(theirs) ^ set(ours))}"]
    return [f"{overlay}: {k[1]}/{k[2]} differs from kustomize's" for k in ours if ours[k] != theirs[k]]


def check_configs(objects, overlay, inferprobe):
    """Runs `inferprobe check-config` on the overlay's config, as its pods will see it."""
    problems = []
    for obj in objects:
        if obj["kind"] != "ConfigMap" or "config.yml" not in obj.get("data", {}):
            continue
        text = obj["data"]["config.yml"].replace("__HOST_IP__", "10.0.0.1")
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "config.yml"
            path.write_text(text, encoding="utf-8")
            env = dict(os.environ, OPENAI_API_KEY="placeholder", ANTHROPIC_API_KEY="placeholder")
            run = subprocess.run(
                [inferprobe, "check-config", str(path)], capture_output=True, text=True, env=env
            )
        if run.returncode != 0:
            problems.append(f"{overlay}: check-config:\n{run.stdout}{run.stderr}")
        else:
            print(f"ok: {overlay}: {run.stdout.strip()}")
    return problems


def main():
    parser = argparse.ArgumentParser(description="Validate the Kubernetes manifests.")
    parser.add_argument("--inferprobe", help="binary for check-config on the ConfigMaps' configs")
    args = parser.parse_args()

    if not self_test():
        return 1
    failures = []
    kustomize = kustomize_command()
    if kustomize is None:
        print("skip: neither kustomize nor kubectl is installed; render.py alone renders")
    for overlay in OVERLAYS:
        try:
            objects = render.render(HERE / overlay)
        except (render.RenderError, yaml.YAMLError) as e:
            failures.append(f"{overlay}: {e}")
            continue
        for obj in objects:
            for problem in validate_object(obj):
                failures.append(f"{overlay}: {obj['kind']}/{obj['metadata']['name']}: {problem}")
        print(f"ok: {overlay}: {len(objects)} objects checked")
        if kustomize:
            problems = compare_with_kustomize(kustomize, objects, overlay)
            failures.extend(problems)
            if not problems:
                print(f"ok: {overlay}: same objects as `{' '.join(kustomize)}`")
        if args.inferprobe:
            failures.extend(check_configs(objects, overlay, args.inferprobe))
    for extra in EXTRA_FILES:
        for obj in yaml.safe_load_all((HERE / extra).read_text(encoding="utf-8")):
            for problem in validate_object(obj):
                failures.append(f"{extra}: {obj['kind']}: {problem}")
        print(f"ok: {extra}")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
