"""Just enough OpenAPI 3 schema checking for contract tests against Immich's document
(``$ref``, ``allOf``, ``nullable``, ``type``, ``required``, ``properties``, ``items``,
``enum``, ``minimum``/``maximum``, ``format: uuid``)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float),
}


class OpenApi:
    def __init__(self, path: Path) -> None:
        self.doc = json.loads(path.read_text())

    def schema(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.doc["components"]["schemas"][name]
        return found

    def response_schema(self, path: str, method: str, status: str = "200") -> dict[str, Any]:
        op = self.doc["paths"][path][method]
        found: dict[str, Any] = op["responses"][status]["content"]["application/json"]["schema"]
        return found

    def request_schema(self, path: str, method: str) -> dict[str, Any]:
        op = self.doc["paths"][path][method]
        found: dict[str, Any] = op["requestBody"]["content"]["application/json"]["schema"]
        return found

    def errors(self, value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
        """Every way ``value`` breaks ``schema`` (empty: it conforms)."""
        if "$ref" in schema:
            return self.errors(value, self.schema(schema["$ref"].rsplit("/", 1)[-1]), where)
        if value is None:
            return [] if schema.get("nullable") else [f"{where}: null not allowed"]
        found: list[str] = []
        for part in schema.get("allOf", []):
            found += self.errors(value, part, where)
        kind = schema.get("type")
        if kind:
            ok = isinstance(value, _TYPES[kind]) and not (
                kind in ("integer", "number") and isinstance(value, bool))
            if not ok:
                return [*found, f"{where}: expected {kind}, got {type(value).__name__}"]
        if "enum" in schema and value not in schema["enum"]:
            found.append(f"{where}: {value!r} not in {schema['enum']}")
        if schema.get("format") == "uuid" and isinstance(value, str):
            try:
                uuid.UUID(value)
            except ValueError:
                found.append(f"{where}: not a uuid")
        if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
            found.append(f"{where}: below minimum {schema['minimum']}")
        if "maximum" in schema and isinstance(value, int | float) and value > schema["maximum"]:
            found.append(f"{where}: above maximum {schema['maximum']}")
        if isinstance(value, dict):
            props = schema.get("properties", {})
            found += [f"{where}: missing {key}" for key in schema.get("required", [])
                      if key not in value]
            if props:
                found += [f"{where}: unknown property {key}" for key in value if key not in props]
            for key, sub in props.items():
                if key in value:
                    found += self.errors(value[key], sub, f"{where}.{key}")
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                found += self.errors(item, schema["items"], f"{where}[{i}]")
        return found
