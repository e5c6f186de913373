#!/usr/bin/env python3
"""Renders a kustomization the way `kubectl kustomize` does, for the subset used here.

    python3 packaging/kubernetes/render.py packaging/kubernetes/overlays/regional

Only `resources` (files, and folders holding a kustomization.yaml) is understood; any other
field is an error, so the manifests stay renderable without kustomize itself. validate.sh
checks this output against `kubectl kustomize` where kubectl is installed.
"""

import pathlib
import sys

import yaml

ALLOWED = {"apiVersion", "kind", "resources"}


class RenderError(Exception):
    pass


def render(folder):
    """Every object of the kustomization in `folder`, in resource order."""
    folder = pathlib.Path(folder)
    path = folder / "kustomization.yaml"
    if not path.is_file():
        raise RenderError(f"{folder}: no kustomization.yaml")
    kustomization = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(kustomization) - ALLOWED
    if unknown:
        raise RenderError(f"{path}: fields this renderer does not support: {sorted(unknown)}")
    objects = []
    for entry in kustomization.get("resources") or []:
        target = folder / entry
        if target.is_dir():
            objects.extend(render(target))
        elif target.is_file():
            docs = yaml.safe_load_all(target.read_text(encoding="utf-8"))
            objects.extend(d for d in docs if d is not None)
        else:
            raise RenderError(f"{path}: resource {entry} does not exist")
    seen = set()
    for obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"), obj.get("metadata", {}).get("name"))
        if key in seen:
            raise RenderError(f"{path}: {key} defined twice")
        seen.add(key)
    return objects


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        objects = render(argv[1])
    except (RenderError, yaml.YAMLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
