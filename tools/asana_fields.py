"""Generate ``asana_hooks/asana_fields.json``: the fields Asana's OpenAPI spec lists per resource.

``asana_hooks.opt_fields`` checks the operator's ``HOOKS_OPT_FIELDS_<TYPE>`` against that file at
start. This script is the only writer of it; run it again when Asana's spec changes.

Input is Asana's official spec, ``defs/asana_oas.yaml`` in https://github.com/Asana/openapi, as a
local file (the script never goes to the network)::

    git clone https://github.com/Asana/openapi /tmp/asana-openapi
    COMMIT=$(git -C /tmp/asana-openapi rev-parse HEAD)
    git -C /tmp/asana-openapi show "$COMMIT:defs/asana_oas.yaml" > /tmp/asana_oas.yaml
    python tools/asana_fields.py /tmp/asana_oas.yaml --commit "$COMMIT"

What it writes:

* a resource type is every ``GET /<collection>/{<type>_gid}``: the key is ``<type>`` and its
  fields are those of the schema under the 200 response's ``data`` (e.g. ``TaskResponse``);
* a field is ``null`` when it is a scalar or has no known structure (anything deeper is
  accepted); the name of another resource type when it is (an array of) a reference to one;
  else, for an inline object, a nested mapping of the same form;
* a reference is a schema such as ``UserCompact`` whose ``resource_type`` example is a type
  listed here and whose name starts with that type's CamelCase name. The generic
  ``AsanaResource`` and ``AsanaNamedResource`` (example ``task``) are not references: they stay
  inline (``gid``, ``resource_type``, ``name``), as the spec lists nothing more for them;
* ``$ref`` is followed; an array stands for its items; the properties of ``allOf``, ``oneOf``
  and ``anyOf`` parts are merged. ``allOf: [TaskCompact, {inline}]`` is a reference to task
  (the inline part only describes or extends it). A field that alternatives declare with
  different references (``membership.parent``: goal, project, portfolio, ...) becomes the
  merged properties of those schemas as the spec writes them (compact forms);
* a schema met again inside itself is ``null``.

The JSON is written with sorted keys and an indent of 1, so a regeneration diffs line by line.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import yaml

Field: TypeAlias = "str | dict[str, Field] | None"
Schema: TypeAlias = Mapping[str, Any]

REPO_URL = "https://github.com/Asana/openapi"
SPEC_PATH = "defs/asana_oas.yaml"
OUT = Path(__file__).resolve().parent.parent / "asana_hooks" / "asana_fields.json"

GET_ONE = re.compile(r"/[a-z_]+/\{([a-z_]+)_gid\}")
"""A path that GETs one resource by gid; the parameter names the resource type."""

COMBINERS = ("allOf", "oneOf", "anyOf")


def camel(resource_type: str) -> str:
    """``status_update`` -> ``StatusUpdate``, the stem of its schemas' names."""
    return "".join(part.capitalize() for part in resource_type.split("_"))


class Spec:
    """The schemas of one OpenAPI document and what each field of each resource is."""

    def __init__(self, document: Schema) -> None:
        self.document = document
        self.schemas: Schema = document["components"]["schemas"]
        self.types: dict[str, str] = self._get_one_schemas()
        """resource_type -> name of the schema its GET returns."""

    def _get_one_schemas(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for path, item in self.document["paths"].items():
            match = GET_ONE.fullmatch(path)
            if not match or "get" not in item:
                continue
            responses = item["get"]["responses"]
            response = self.deref(responses.get(200) or responses["200"])  # YAML reads 200 as int
            envelope = self.deref(response["content"]["application/json"]["schema"])
            data = envelope["properties"]["data"]
            found[match.group(1)] = ref_name(data["$ref"])
        return found

    def deref(self, node: Schema) -> Schema:
        """Follow ``$ref`` (anywhere in the document) until a node without one."""
        seen: set[str] = set()
        while "$ref" in node:
            ref: str = node["$ref"]
            if ref in seen or not ref.startswith("#/"):
                raise ValueError(f"cannot follow $ref {ref}")
            seen.add(ref)
            target: Any = self.document
            for part in ref[2:].split("/"):
                target = target[part]
            node = target
        return node

    def properties(self, node: Schema) -> Iterator[tuple[str, Schema]]:
        """Every (name, schema) the node declares, through $ref and allOf/oneOf/anyOf parts;
        a name declared by several parts comes once per part."""
        node = self.deref(node)
        yield from node.get("properties", {}).items()
        for combiner in COMBINERS:
            for part in node.get(combiner, ()):
                yield from self.properties(part)

    def example_type(self, name: str) -> str | None:
        """The resource type schema ``name`` stands for, if it is one listed here."""
        for prop, schema in self.properties(self.schemas[name]):
            if prop == "resource_type":
                example = self.deref(schema).get("example")
                if isinstance(example, str) and example in self.types:
                    return example if name.startswith(camel(example)) else None
        return None

    def target(self, node: Schema) -> str | None:
        """The resource type ``node`` is a reference to, or None.

        ``UserCompact``; ``allOf: [TaskCompact, {nullable: true, properties: ...}]`` (inline
        parts only decorate or extend the reference); ``oneOf``/``anyOf`` whose parts all name
        the same type."""
        if "$ref" in node:
            name = ref_name(node["$ref"])
            if name in self.schemas:
                return self.example_type(name) or self.target(self.schemas[name])
            return None
        if "allOf" in node:
            targets = {self.target(part) for part in node["allOf"] if is_schema_part(part)}
            return targets.pop() if len(targets) == 1 else None
        for combiner in ("oneOf", "anyOf"):
            if combiner in node:
                targets = {self.target(part) for part in node[combiner]}
                return targets.pop() if len(targets) == 1 else None
        return None

    def items(self, node: Schema) -> Schema:
        """An array stands for its items."""
        while self.deref(node).get("type") == "array" and "items" in self.deref(node):
            node = self.deref(node)["items"]
        return node

    def fields(self, node: Schema, inlining: tuple[str, ...] = ()) -> dict[str, Field]:
        """Each property of ``node`` (merged over its parts) -> what it is. A name declared by
        several parts is read as ``anyOf`` those declarations: one type if they all refer to
        the same one, else the merged properties of all of them."""
        declared: dict[str, list[Schema]] = {}
        for name, schema in self.properties(node):
            declared.setdefault(name, []).append(self.items(schema))
        return {
            name: self.field(schemas[0] if len(schemas) == 1 else {"anyOf": schemas}, inlining)
            for name, schemas in declared.items()
        }

    def field(self, node: Schema, inlining: tuple[str, ...]) -> Field:
        """One property: a reference (type name), an inline object (mapping) or None."""
        node = self.items(node)
        target = self.target(node)
        if target is not None:
            return target
        names = tuple(ref_name(ref) for ref in refs(node))
        if set(names) & set(inlining):
            return None  # a schema inside itself: accept anything below
        return self.fields(node, inlining + names) or None

    def resource_fields(self) -> dict[str, dict[str, Field]]:
        return {
            resource_type: self.fields(self.schemas[name])
            for resource_type, name in sorted(self.types.items())
        }


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[1]


def refs(node: Schema) -> Iterator[str]:
    """The $refs a node makes directly or through its allOf/oneOf/anyOf parts."""
    if "$ref" in node:
        yield node["$ref"]
    for combiner in COMBINERS:
        for part in node.get(combiner, ()):
            yield from refs(part)


def is_schema_part(part: Schema) -> bool:
    """Whether an allOf part names other schemas ($ref, allOf/oneOf/anyOf) rather than adding
    inline properties or decoration (description, nullable, readOnly) to them."""
    return any(key in part for key in ("$ref", *COMBINERS))


def count(fields: Mapping[str, Field]) -> int:
    return sum(1 + (count(v) if isinstance(v, dict) else 0) for v in fields.values())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Write asana_fields.json from Asana's spec.")
    parser.add_argument("spec", type=Path, help="a local copy of Asana's asana_oas.yaml")
    parser.add_argument("--commit", required=True, help="the Asana/openapi commit it is from")
    parser.add_argument("--path", default=SPEC_PATH, help=f"its path there ({SPEC_PATH})")
    parser.add_argument("--repo", default=REPO_URL, help=f"the repository ({REPO_URL})")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the JSON")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[0-9a-f]{40}", args.commit):
        parser.error("--commit takes a full 40-hex commit id")

    spec = Spec(yaml.safe_load(args.spec.read_text(encoding="utf-8")))
    types = spec.resource_fields()
    data = {
        "source": f"{args.repo}/blob/{args.commit}/{args.path}",
        "commit": args.commit,
        "generated_by": shlex.join(["python", "tools/asana_fields.py", *argv]),
        "types": types,
    }
    args.out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    total = sum(count(fields) for fields in types.values())
    print(f"{args.out}: {len(types)} types, {total} fields", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
