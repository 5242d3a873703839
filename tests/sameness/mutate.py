#!/usr/bin/env python3
"""Mutated rules documents, to compare two builds' `rulefilter validate` output byte for byte.

Used when the configuration decoder changes (docs/performance.md, "Generic code"): every message, field path
and the order and set of problems must stay the same. Reads the shipped rules/*.yaml and tests/invalid/*,
writes N mutated documents (JSON, as Istio hands them over) into OUT_DIR:

    .venv/bin/python tests/sameness/mutate.py OUT_DIR [N] [SEED]
    tests/sameness/compare.sh REFERENCE_BINARY NEW_BINARY OUT_DIR

Mutations: a field deleted, a key misspelt, an unknown key added, a value of another kind (string, number,
list, object, bool, null), numbers out of range or fractional or written as doubles, unknown enum variants and
YAML 1.1 words, rules nested into all/any/not, several in one rule and across rules.
"""
import copy
import glob
import json
import os
import random
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OTHER_VALUES = [
    "x", "", "yes", "on", "5xx", "500-599", "dryrun", "dry_run", "enforce", "/p", "${header.x}",
    0, 1, 200, 301, 70000, -1, -200, 2.5, 200.0, 1e20, 9007199254740993, 65536,
    [], ["a"], [1, 2], [{}], [None], [{"exact": "a"}],
    {}, {"a": 1}, {"exact": "a"}, {"message": "m"}, {"status": 200}, {"from": "a", "to": "b"},
    True, False, None,
]


def typo(key):
    if not key:
        return "x"
    kind = random.randrange(4)
    i = random.randrange(len(key))
    if kind == 0:
        return key[:i] + key[i + 1:] or key + "x"
    if kind == 1:
        return key[:i] + random.choice("aeiouxs_") + key[i:]
    if kind == 2 and len(key) > 1 and i + 1 < len(key):
        return key[:i] + key[i + 1] + key[i] + key[i + 2:]
    return key.upper() if key.upper() != key else key + "s"


def places(value, path=()):
    """Every (container, key-or-index) below value."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((value, k))
            out.extend(places(v))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append((value, i))
            out.extend(places(v))
    return out


def mutate_once(root):
    spots = places(root)
    if not spots:
        return
    container, key = random.choice(spots)
    kind = random.randrange(9)
    if isinstance(container, dict):
        if kind == 0:
            del container[key]
        elif kind == 1:
            new = typo(key)
            if new not in container:
                items = list(container.items())
                container.clear()
                for k, v in items:
                    container[new if k == key else k] = v
        elif kind == 2:
            container[typo(key) + "_extra"] = random.choice(OTHER_VALUES)
        elif kind == 3 and isinstance(container[key], (int, float)) and not isinstance(container[key], bool):
            container[key] = random.choice([-1, 0, 2.5, 70000, 1e20, float(container[key]), 600, 99])
        elif kind == 4 and isinstance(container[key], str):
            container[key] = random.choice(["dryrun", "yes", "Off", "", "5xx", "9xx", "abc", 404, 404.0])
        elif kind == 5 and isinstance(container[key], dict) and container[key]:
            # Nest it: a match block moved under all/any/not.
            container[key] = random.choice([
                {"all": [copy.deepcopy(container[key])]},
                {"any": [copy.deepcopy(container[key]), {"bogus": 1}]},
                {"not": copy.deepcopy(container[key])},
            ]) if key == "match" else container[key]
        else:
            container[key] = copy.deepcopy(random.choice(OTHER_VALUES))
    else:
        if kind == 0:
            del container[key]
        elif kind == 1:
            container.insert(key, copy.deepcopy(random.choice(OTHER_VALUES)))
        else:
            container[key] = copy.deepcopy(random.choice(OTHER_VALUES))


def nested_rule(rule):
    """A rule whose match sits deep under all/any/not, with a wrong field inside."""
    rule = copy.deepcopy(rule)
    inner = rule.get("match") if isinstance(rule.get("match"), dict) else {}
    inner = copy.deepcopy(inner)
    inner[random.choice(["paht", "method", "status", "headers", "sample", "source"])] = random.choice(OTHER_VALUES)
    rule["match"] = {"all": [{"any": [{"not": inner}, {"path": "/x"}]}]}
    return rule


def sources():
    docs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "rules", "*.yaml"))) + sorted(
        glob.glob(os.path.join(ROOT, "tests", "invalid", "*.yaml"))
    ) + sorted(glob.glob(os.path.join(ROOT, "tests", "invalid", "*.json"))):
        if path.endswith(".test.yaml"):
            continue
        try:
            with open(path) as f:
                loaded = list(yaml.safe_load_all(f))
        except yaml.YAMLError:
            continue
        for doc in loaded:
            if isinstance(doc, dict) and doc.get("kind") == "WasmPlugin":
                doc = doc.get("spec", {}).get("pluginConfig")
            if isinstance(doc, dict):
                docs.append(doc)
    return docs


def main():
    out_dir = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
    random.seed(int(sys.argv[3]) if len(sys.argv) > 3 else 14)
    os.makedirs(out_dir, exist_ok=True)
    docs = sources()
    for n in range(count):
        doc = copy.deepcopy(random.choice(docs))
        for _ in range(random.choice([1, 1, 2, 3, 5])):
            mutate_once(doc)
        rules = [r for phase in ("request", "response") if isinstance(doc.get(phase), list) for r in doc[phase]]
        if rules and random.random() < 0.2 and isinstance(doc.get("request"), list):
            rule = random.choice(rules)
            if isinstance(rule, dict):
                doc["request"].append(nested_rule(rule))
        text = json.dumps(doc, default=str)
        if random.random() < 0.3:
            # Whole numbers as doubles, as a protobuf Struct hands them over.
            text = json.dumps(json.loads(text), default=str).replace(": 200", ": 200.0").replace(": 1,", ": 1.0,")
        with open(os.path.join(out_dir, "m%04d.json" % n), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
