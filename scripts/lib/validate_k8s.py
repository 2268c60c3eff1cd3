#!/usr/bin/env python3
"""Validates deploy/k8s/ offline (scripts/check-k8s runs it).

1. Every built-in resource against the Kubernetes JSON schemas (derived from the Kubernetes OpenAPI
   spec) that the PyPI package kubernetes-validate ships, in strict mode (unknown fields refused).
2. KEDA's ScaledObject and TriggerAuthentication (CRDs, not in those schemas) against a schema of
   the fields used here, written from KEDA's documentation: required fields, types, no unknown keys.
3. Cross-references: selectors match their pods' labels, PodDisruptionBudgets and ScaledObjects
   name existing workloads, every `--channel` and every scaled queue is a channel of channels.d/,
   every ConfigMap/Secret a pod mounts is defined here or documented as created by hand.
Prints one line per problem and a summary line; exit 1 on any problem.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.31.0"
# Created by the operator (docs/deployment.md): the Secrets from your secret store, the ConfigMaps
# from channels.d/, templates/ and the two YAML files with `kubectl create configmap`.
CREATED_BY_HAND = {("ConfigMap", "herald-routing"), ("ConfigMap", "herald-channels"), ("ConfigMap", "herald-templates"),
                   ("Secret", "herald-env"), ("Secret", "herald-keda-rabbitmq"), ("Secret", "rabbitmq-secrets")}

NAME = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}},
        "additionalProperties": False}
METADATA = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string"}, "namespace": {"type": "string"},
    "labels": {"type": "object"}, "annotations": {"type": "object"}}, "additionalProperties": False}
KEDA_SCHEMAS = {
    "ScaledObject": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"}, "kind": {"const": "ScaledObject"}, "metadata": METADATA,
            "spec": {"type": "object", "required": ["scaleTargetRef", "triggers"], "additionalProperties": False,
                     "properties": {
                         "scaleTargetRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                                            "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                                           "apiVersion": {"type": "string"}}},
                         "minReplicaCount": {"type": "integer", "minimum": 0},
                         "maxReplicaCount": {"type": "integer", "minimum": 1},
                         "pollingInterval": {"type": "integer", "minimum": 1},
                         "cooldownPeriod": {"type": "integer", "minimum": 0},
                         "triggers": {"type": "array", "minItems": 1, "items": {
                             "type": "object", "required": ["type", "metadata"], "additionalProperties": False,
                             "properties": {
                                 "type": {"type": "string"}, "name": {"type": "string"},
                                 "authenticationRef": NAME,
                                 "metadata": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}},
    "TriggerAuthentication": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"}, "kind": {"const": "TriggerAuthentication"}, "metadata": METADATA,
            "spec": {"type": "object", "additionalProperties": False, "properties": {
                "secretTargetRef": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["parameter", "name", "key"], "additionalProperties": False,
                    "properties": {"parameter": {"type": "string"}, "name": {"type": "string"}, "key": {"type": "string"}}}}}}}},
}
# The rabbitmq scaler's metadata (KEDA docs): what this repository sets, with the allowed values.
RABBITMQ_TRIGGER = {"type": "object", "required": ["queueName", "mode", "value"], "additionalProperties": False,
                    "properties": {"protocol": {"enum": ["amqp", "http", "auto"]}, "queueName": {"type": "string"},
                                   "mode": {"enum": ["QueueLength", "MessageRate"]},
                                   "value": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}}}


def main(root: Path) -> int:
    problems: list[str] = []
    docs: list[tuple[str, dict]] = []
    for path in sorted((root / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    channels = {yaml.safe_load(p.read_text())["name"] for p in (root / "channels.d").glob("*.yaml")}

    defined = {(d.get("kind"), d["metadata"]["name"]) for _, d in docs if d.get("kind") != "Kustomization"}
    workloads = {}
    checked = 0
    for file, doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name", "?")
        where = f"{file}: {kind}/{name}"
        if kind == "Kustomization":
            for resource in doc.get("resources", []):
                if not (root / "deploy" / "k8s" / resource).exists():
                    problems.append(f"{where}: resource {resource} does not exist")
            continue
        checked += 1
        if kind in KEDA_SCHEMAS:
            for error in jsonschema.Draft7Validator(KEDA_SCHEMAS[kind]).iter_errors(doc):
                problems.append(f"{where}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
            for trigger in doc.get("spec", {}).get("triggers", []) if kind == "ScaledObject" else []:
                if trigger.get("type") != "rabbitmq":
                    problems.append(f"{where}: trigger type {trigger.get('type')} (only rabbitmq is used here)")
                    continue
                for error in jsonschema.Draft7Validator(RABBITMQ_TRIGGER).iter_errors(trigger.get("metadata", {})):
                    problems.append(f"{where}: trigger metadata: {error.message}")
                queue = trigger.get("metadata", {}).get("queueName", "")
                if queue.removeprefix("herald.channel.") not in channels:
                    problems.append(f"{where}: queue {queue} is not a channel of channels.d/")
                ref = trigger.get("authenticationRef", {}).get("name")
                if ref and ("TriggerAuthentication", ref) not in defined:
                    problems.append(f"{where}: authenticationRef {ref} is not defined")
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{where}: {'/'.join(map(str, error.path))}: {error.message}")
        except Exception as error:  # noqa: BLE001 - e.g. a kind without a schema
            problems.append(f"{where}: {error}")
        spec = doc.get("spec", {})
        template = spec.get("template", {})
        if kind in ("Deployment", "StatefulSet"):
            workloads[name] = template.get("metadata", {}).get("labels", {})
            selector = spec.get("selector", {}).get("matchLabels", {})
            if not selector.items() <= workloads[name].items():
                problems.append(f"{where}: selector {selector} does not match the pod labels")
        pod = template.get("spec", {})
        for volume in pod.get("volumes", []):
            for ref_kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if key in volume:
                    ref = volume[key].get("name") or volume[key].get("secretName")
                    if (ref_kind, ref) not in defined | CREATED_BY_HAND:
                        problems.append(f"{where}: volume {volume['name']} names {ref_kind} {ref}, defined nowhere")
        for container in pod.get("containers", []):
            for source in container.get("envFrom", []):
                ref = source.get("secretRef", {}).get("name")
                if ref and ("Secret", ref) not in defined | CREATED_BY_HAND:
                    problems.append(f"{where}: envFrom names Secret {ref}, defined nowhere")
            args = container.get("args", [])
            for i, arg in enumerate(args):
                if arg == "--channel" and (i + 1 >= len(args) or args[i + 1] not in channels):
                    problems.append(f"{where}: --channel {args[i + 1] if i + 1 < len(args) else ''} is not in channels.d/")
    for file, doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name", "?")
        if kind == "PodDisruptionBudget":
            selector = doc["spec"]["selector"]["matchLabels"]
            if not any(selector.items() <= labels.items() for labels in workloads.values()):
                problems.append(f"{file}: PodDisruptionBudget/{name} selects no workload")
        if kind == "ScaledObject" and doc["spec"]["scaleTargetRef"]["name"] not in workloads:
            problems.append(f"{file}: ScaledObject/{name} scales {doc['spec']['scaleTargetRef']['name']}, not defined")
    for problem in problems:
        print(problem)
    print(f"deploy/k8s: {checked} resources checked (Kubernetes {KUBERNETES_VERSION} schemas of kubernetes-validate "
          f"{getattr(kubernetes_validate, '__version__', '')}, strict; KEDA CRDs by their documented fields): "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()))
