"""Validates the custom resources of a rendered kustomization offline.

    python k8s/schemas/validate.py rendered.yaml

Every document whose kind is not built into Kubernetes (PodMonitor,
PrometheusRule, ScaledObject, ...) is checked against the JSON schema of
its kind in this directory (<kind, lower case>.json); a custom kind without
a schema is an error. Built-in kinds are kubernetes-validate's job.
tests/deploy.rs runs both. Needs PyYAML and jsonschema (.ci/prepare
installs them into target/tools/k8s-validate).
"""

import json
import pathlib
import sys

import jsonschema
import yaml

HERE = pathlib.Path(__file__).resolve().parent
# API groups of Kubernetes itself ("" is the core group).
BUILT_IN = {"", "apps", "batch", "policy", "autoscaling"}


def group(api_version):
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def built_in(api_version):
    g = group(api_version)
    return g in BUILT_IN or g.endswith(".k8s.io")


def main(path):
    failures = 0
    checked = 0
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for doc in docs:
        api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        name = (doc.get("metadata") or {}).get("name", "?")
        if built_in(api):
            continue
        schema_path = HERE / f"{kind.lower()}.json"
        if not schema_path.exists():
            print(f"FAIL {kind}/{name} ({api}): no schema {schema_path.name} in k8s/schemas")
            failures += 1
            continue
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        for e in errors:
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            print(f"FAIL {kind}/{name}: {where}: {e.message}")
        if errors:
            failures += 1
        else:
            print(f"ok {kind}/{name}")
        checked += 1
    print(f"{checked} custom resources checked, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
