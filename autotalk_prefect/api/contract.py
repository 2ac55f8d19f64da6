"""The AutoTalk contract (``openapi.yaml``) as data, for the client, the sandbox and the tests.

The document ships inside the package, so it is read through :mod:`importlib.resources` and
works the same from a checkout, an editable install or a wheel. It is parsed once; callers get a
deep copy, so nobody can change what the next caller sees.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

CONTRACT_RESOURCE = "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

try:  # the C loader is several times faster when PyYAML was built with libyaml
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class ContractOperation:
    """One operation of the contract: where it lives and whether a retry is safe."""

    operation_id: str
    method: str  # upper case, e.g. "GET"
    path: str  # relative to the server URL, e.g. "/dynadata/type/{type}/list"
    idempotent: bool
    summary: str


def contract_text() -> str:
    """The raw YAML text of the contract, as shipped in the package."""
    return resources.files("autotalk_prefect.api").joinpath(CONTRACT_RESOURCE).read_text("utf-8")


@lru_cache(maxsize=1)
def _parsed() -> dict[str, Any]:
    document = yaml.load(contract_text(), Loader=_Loader)  # a safe loader: data only
    if not isinstance(document, dict) or "paths" not in document:
        raise ValueError(f"{CONTRACT_RESOURCE} is not an OpenAPI document (no 'paths')")
    return document


def load_contract() -> dict[str, Any]:
    """The OpenAPI 3.0 document as a fresh dict (safe to mutate)."""
    return copy.deepcopy(_parsed())


def operation_index() -> dict[str, ContractOperation]:
    """Every operation by ``operationId`` (the client method names), in document order."""
    index: dict[str, ContractOperation] = {}
    for path, item in _parsed()["paths"].items():
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            operation_id = operation["operationId"]
            if operation_id in index:
                raise ValueError(f"duplicate operationId {operation_id!r} in {CONTRACT_RESOURCE}")
            index[operation_id] = ContractOperation(
                operation_id=operation_id,
                method=method.upper(),
                path=path,
                idempotent=bool(operation.get("x-idempotent", method in ("get", "put"))),
                summary=str(operation.get("summary", "")),
            )
    return index


_OPENAPI_ONLY_KEYS = frozenset({"nullable", "discriminator", "xml", "externalDocs", "example"})


def _to_json_schema(node: Any) -> Any:
    """Rewrite one OpenAPI 3.0 Schema Object (recursively) as JSON Schema 2020-12."""
    if isinstance(node, list):
        return [_to_json_schema(value) for value in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _OPENAPI_ONLY_KEYS or key.startswith("x-"):
            continue
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace("#/components/schemas/", "#/$defs/")
        elif key in ("properties", "patternProperties", "$defs"):
            out[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = _to_json_schema(value)
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def json_schema(schema: dict[str, Any] | str) -> dict[str, Any]:
    """A standalone JSON Schema (draft 2020-12) for a contract schema.

    ``schema`` is a component name (``"Message"``) or an OpenAPI Schema Object taken from the
    document (for example a response's ``content.application/json.schema``). OpenAPI 3.0's
    ``nullable`` becomes a ``"null"`` type, ``$ref``s point into ``$defs`` (every component
    schema is included), and ``x-`` extensions are dropped.
    """
    components = _parsed().get("components", {}).get("schemas", {})
    if isinstance(schema, str):
        if schema not in components:
            raise KeyError(f"no schema named {schema!r} in {CONTRACT_RESOURCE}")
        schema = {"$ref": f"#/components/schemas/{schema}"}
    converted = _to_json_schema(copy.deepcopy(schema))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **converted,
        "$defs": {name: _to_json_schema(sub) for name, sub in components.items()},
    }
