#!/usr/bin/env python3
"""schema-check.py SCHEMA.json GOOD-DIR... : the test behind schema.sh.

Every document of every *.yaml / *.yml file below the GOOD-DIRs (specs the
loader accepts) must validate against the schema that "binderyd schema"
printed; each document of BAD (below) must not. YAML is read as the loader
reads it: YAML 1.2 core schema (an unquoted date stays a string, yes/no
are strings), which PyYAML's 1.1 resolvers are narrowed to here.
Validator: python3-jsonschema (Debian), Draft 2020-12.
Prints "ok - ..." / "not ok - ..." lines and "N passed, N failed"."""
import json
import os
import re
import sys

import jsonschema
import yaml


class CoreLoader(yaml.SafeLoader):
    pass


# YAML 1.2 core: drop 1.1's timestamps, yes/no/on/off booleans, sexagesimals.
CoreLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool",
                                                   "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CoreLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
CoreLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                 list("-+0123456789"))
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))

BAD = {
    "unknown key on a Worker": {"kind": "Worker", "name": "api", "main": "a.js", "compatibility_date": "2025-01-01",
                                "bindngs": {}},
    "unknown kind": {"kind": "KVNamspace", "name": "x"},
    "a Worker key on a KVNamespace (wrong kind)": {"kind": "KVNamespace", "name": "x", "main": "a.js"},
    "an R2 key on a D1Database (wrong kind)": {"kind": "D1Database", "name": "x", "bucket_name": "abc"},
    "no kind": {"name": "x"},
    "no name": {"kind": "Queue"},
    "unknown binding kind": {"kind": "Worker", "name": "api", "main": "a.js", "compatibility_date": "2025-01-01",
                             "bindings": {"X": {"kv_namspace": "s"}}},
    "two binding kinds": {"kind": "Worker", "name": "api", "main": "a.js", "compatibility_date": "2025-01-01",
                          "bindings": {"X": {"text": "a", "json": 1}}},
    "unknown key in a binding reference": {"kind": "Worker", "name": "api", "main": "a.js",
                                           "compatibility_date": "2025-01-01",
                                           "bindings": {"X": {"durable_object": {"class": "C"}}}},
    "bad enum value": {"kind": "R2Bucket", "name": "b", "location_hint": "mars"},
    "wrong value type": {"kind": "Worker", "name": "api", "main": "a.js", "compatibility_date": "2025-01-01",
                         "workers_dev": "yes"},
    "secret with two sources": {"kind": "SecretsStoreSecret", "name": "s", "value": {"env": "A", "file": "b"}},
    "batch_size out of range": {"kind": "Worker", "name": "w", "main": "a.js", "compatibility_date": "2025-01-01",
                                "consumers": [{"queue": "q", "batch_size": 1000}]},
    "unknown migration key": {"kind": "Worker", "name": "w", "main": "a.js", "compatibility_date": "2025-01-01",
                              "durable_objects": {"classes": ["A"],
                                                  "migrations": [{"tag": "v1", "new_sqlite_classes": ["A"],
                                                                  "transferred_classes": []}]}},
}


def main():
    schema = json.load(open(sys.argv[1]))
    passed = failed = 0

    def ok(msg):
        nonlocal passed
        passed += 1
        print("ok - " + msg)

    def not_ok(msg):
        nonlocal failed
        failed += 1
        print("not ok - " + msg)

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
        ok("the schema is a valid draft 2020-12 schema")
    except jsonschema.SchemaError as e:
        not_ok("the schema is not a valid draft 2020-12 schema: %s" % e.message)
        print("%d passed, %d failed" % (passed, failed))
        return 1
    v = jsonschema.Draft202012Validator(schema)
    n_docs = 0
    for top in sys.argv[2:]:
        for root, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "expected-bad")
            for f in sorted(files):
                if not (f.endswith(".yaml") or f.endswith(".yml")) or f.startswith("."):
                    continue
                path = os.path.join(root, f)
                with open(path) as fh:
                    docs = [d for d in yaml.load_all(fh, Loader=CoreLoader) if d is not None]
                for i, d in enumerate(docs):
                    n_docs += 1
                    errs = sorted(v.iter_errors(d), key=lambda e: list(e.path))
                    if errs:
                        not_ok("%s document %d: %s at %s" % (path, i + 1, errs[0].message,
                                                              "/".join(map(str, errs[0].path))))
    if n_docs and not failed:
        ok("%d documents of good specs validate" % n_docs)
    elif not n_docs:
        not_ok("no good documents found")
    for what, doc in BAD.items():
        if list(v.iter_errors(doc)):
            ok("refused: " + what)
        else:
            not_ok("accepted: " + what)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


sys.exit(main())
