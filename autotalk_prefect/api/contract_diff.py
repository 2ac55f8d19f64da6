"""Compare an OpenAPI document (the one AutoTalk's API host serves) with our own contract.

Pure: documents in, a :class:`ContractDiff` out (no HTTP, no Prefect). It answers the questions
that decide whether our client still works against the real API: do the paths and methods we
call exist, does the server require request fields or query parameters we do not send, can we
authenticate the way it wants, how does it page, which response fields differ, and which of our
``x-assumed`` guesses the document confirms or refutes. ``breaking`` differences are those that
would make one of our calls fail; ``autotalk-prefect contract diff`` exits 1 on any of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from autotalk_prefect.api.contract import HTTP_METHODS, load_contract

PAGINATION_PARAMS = frozenset(
    {
        "limit",
        "skip",
        "offset",
        "page",
        "per_page",
        "perpage",
        "page_size",
        "pagesize",
        "size",
        "cursor",
        "after",
        "before",
        "next",
        "starting_after",
        "page_token",
        "pagetoken",
    }
)
"""Query parameter names (lower case) that page a listing."""

_TEMPLATE = re.compile(r"\{[^}/]*\}")
OpKey = tuple[str, str]  # (METHOD, normalised full path)


class SpecError(ValueError):
    """The document is not an OpenAPI document we can compare (the message says why)."""


@dataclass(frozen=True)
class Difference:
    """One way the document differs from our contract."""

    kind: str  # operation-missing, request-field, query-param, auth, pagination, response-fields...
    where: str  # "POST /contacts/{}/send_message", or "securitySchemes"
    detail: str
    breaking: bool


@dataclass(frozen=True)
class Assumption:
    """One ``x-assumed`` node of ours and what the document says about it."""

    pointer: str  # JSON pointer into our openapi.yaml
    verdict: str  # confirmed | refuted | not covered
    reason: str


@dataclass
class ContractDiff:
    """The comparison: differences (breaking first) and the fate of each ``x-assumed`` item."""

    differences: list[Difference] = field(default_factory=list)
    assumptions: list[Assumption] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        return any(d.breaking for d in self.differences)

    def by_verdict(self, verdict: str) -> list[Assumption]:
        return [a for a in self.assumptions if a.verdict == verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "breaking": self.breaking,
            "differences": [asdict(d) for d in self.differences],
            "assumed": {
                verdict.replace(" ", "_"): [asdict(a) for a in self.by_verdict(verdict)]
                for verdict in ("confirmed", "refuted", "not covered")
            },
        }

    def to_text(self) -> str:
        lines = [
            f"{'BREAKING' if d.breaking else 'differs '}  {d.kind}  {d.where}: {d.detail}"
            for d in self.differences
        ]
        if not lines:
            lines.append("no differences")
        for verdict in ("confirmed", "refuted"):
            items = self.by_verdict(verdict)
            lines.append(f"x-assumed {verdict} by the document ({len(items)}):")
            lines.extend(f"  {a.pointer}: {a.reason}" for a in items)
        lines.append(
            f"x-assumed not covered by the document: {len(self.by_verdict('not covered'))}"
        )
        return "\n".join(lines)


def parse_spec(text: str) -> dict[str, Any]:
    """An OpenAPI document from YAML or JSON text (a safe loader: data only)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"the document is neither JSON nor YAML: {exc}"[:400]) from None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise SpecError("the document is not an OpenAPI document (no 'paths' object)")
    return document


# ---- reading one document ------------------------------------------------------------------


class _Doc:
    """One OpenAPI document with local ``$ref``s resolved and operations keyed by shape."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        servers = raw.get("servers") or [{}]
        first = servers[0] if isinstance(servers, list) and servers else {}
        url = str(first.get("url", "")) if isinstance(first, Mapping) else ""
        self.base = urlsplit(url).path.rstrip("/") if "://" in url else url.rstrip("/")
        self.ops: dict[OpKey, tuple[str, str, dict[str, Any], list[Any]]] = {}
        for path, item in raw["paths"].items():
            item = self.resolve(item)
            if not isinstance(item, Mapping):
                continue
            shared = list(item.get("parameters") or [])
            for method in HTTP_METHODS:
                operation = item.get(method)
                if isinstance(operation, Mapping):
                    key = (method.upper(), self.normal(path))
                    self.ops[key] = (str(path), method, dict(operation), shared)

    def normal(self, path: str) -> str:
        full = (self.base + "/" + str(path).lstrip("/")).rstrip("/") or "/"
        return _TEMPLATE.sub("{}", full)

    def resolve(self, node: Any, depth: int = 0) -> Any:
        """Follow ``{"$ref": "#/..."}`` (local refs only) to the node it names."""
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and depth < 32:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                return {}
            target: Any = self.raw
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
            node, depth = target, depth + 1
        return node

    def params(self, key: OpKey) -> dict[tuple[str, str], dict[str, Any]]:
        """The operation's parameters (path-level ones too) by (in, lower-case name)."""
        _, _, operation, shared = self.ops[key]
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*shared, *(operation.get("parameters") or [])]:
            param = self.resolve(raw)
            if isinstance(param, Mapping) and "name" in param:
                out[(str(param.get("in")), str(param["name"]).lower())] = dict(param)
        return out

    def schema_fields(self, schema: Any) -> tuple[set[str], set[str]]:
        """(property names, required names) of an object schema, or of an array's items."""
        schema = self.resolve(schema)
        if isinstance(schema, Mapping) and schema.get("type") == "array":
            schema = self.resolve(schema.get("items"))
        props: set[str] = set()
        required: set[str] = set()
        if not isinstance(schema, Mapping):
            return props, required
        for part in schema.get("allOf") or []:
            p, r = self.schema_fields(part)
            props |= p
            required |= r
        props |= set((schema.get("properties") or {}).keys())
        required |= set(schema.get("required") or [])
        return props, required

    def json_schema(self, holder: Any) -> Any:
        """The schema of a requestBody / response: JSON content first, else the first one."""
        holder = self.resolve(holder)
        content = holder.get("content") if isinstance(holder, Mapping) else None
        if not isinstance(content, Mapping) or not content:
            return None
        for media, value in content.items():
            if "json" in str(media):
                return value.get("schema") if isinstance(value, Mapping) else None
        first = next(iter(content.values()))
        return first.get("schema") if isinstance(first, Mapping) else None

    def success(self, key: OpKey) -> tuple[str | None, Any]:
        """(lowest 2xx status, its response) of an operation."""
        responses = self.ops[key][2].get("responses") or {}
        codes = sorted(str(c) for c in responses if str(c).startswith("2"))
        if not codes:
            return None, None
        return codes[0], responses.get(codes[0], responses.get(int(codes[0])))

    def schemes(self) -> dict[str, str]:
        """Security scheme name -> a description we can compare ("apiKey header x-api-key")."""
        schemes = (self.raw.get("components") or {}).get("securitySchemes") or {}
        out: dict[str, str] = {}
        for name, scheme in schemes.items():
            scheme = self.resolve(scheme)
            if not isinstance(scheme, Mapping):
                continue
            kind = str(scheme.get("type"))
            if kind == "apiKey":
                out[name] = f"apiKey {scheme.get('in')} {str(scheme.get('name', '')).lower()}"
            elif kind == "http":
                out[name] = f"http {str(scheme.get('scheme', '')).lower()}"
            else:
                out[name] = kind
        return out

    def security_alternatives(self) -> list[list[str]]:
        """Each way to authenticate (all schemes of one alternative at once)."""
        requirements = self.raw.get("security")
        if requirements is None:
            return [[name] for name in self.schemes()]
        return [list(req) for req in requirements if isinstance(req, Mapping)]


SUPPORTED_AUTH = frozenset({"apiKey header x-api-key", "http bearer"})
"""What the client can send (AUTOTALK_AUTH_SCHEME=x-api-key|bearer)."""


def _label(key: OpKey) -> str:
    return f"{key[0]} {key[1]}"


# ---- the differences -----------------------------------------------------------------------


def _operations(ours: _Doc, theirs: _Doc) -> Iterator[Difference]:
    for key in ours.ops:
        if key not in theirs.ops:
            yield Difference(
                "operation-missing",
                _label(key),
                f"we call {ours.ops[key][2].get('operationId', '?')}; the document has no such "
                "path and method",
                True,
            )
    for key in theirs.ops:
        if key not in ours.ops:
            summary = theirs.ops[key][2].get("summary") or theirs.ops[key][2].get("operationId")
            yield Difference(
                "operation-extra", _label(key), f"not in our contract ({summary})", False
            )


def _request(key: OpKey, ours: _Doc, theirs: _Doc) -> Iterator[Difference]:
    our_body = ours.resolve(ours.ops[key][2].get("requestBody"))
    their_body = theirs.resolve(theirs.ops[key][2].get("requestBody"))
    if not isinstance(their_body, Mapping):
        if isinstance(our_body, Mapping):
            yield Difference("request-body", _label(key), "the document takes no body", False)
        return
    if not isinstance(our_body, Mapping):
        if their_body.get("required"):
            yield Difference("request-body", _label(key), "requires a body we do not send", True)
        return
    content = their_body.get("content") or {}
    if content and not any("json" in str(media) for media in content):
        yield Difference(
            "request-body",
            _label(key),
            f"takes {', '.join(map(str, content))}, we send application/json",
            True,
        )
    our_props, our_required = ours.schema_fields(ours.json_schema(our_body))
    their_props, their_required = theirs.schema_fields(theirs.json_schema(their_body))
    for name in sorted(their_required - our_required):
        how = "we may leave it out" if name in our_props else "we never send it"
        yield Difference("request-field", _label(key), f"requires {name!r} ({how})", True)
    for name in sorted(our_required - their_props - their_required):
        if their_props:
            yield Difference(
                "request-field", _label(key), f"has no field {name!r}, which we always send", False
            )


def _parameters(key: OpKey, ours: _Doc, theirs: _Doc) -> Iterator[Difference]:
    our_params, their_params = ours.params(key), theirs.params(key)
    for (where, name), param in sorted(their_params.items()):
        if where not in ("query", "header") or not param.get("required"):
            continue
        mine = our_params.get((where, name))
        if mine is None or not mine.get("required"):
            how = "we may leave it out" if mine else "we never send it"
            yield Difference(f"{where}-param", _label(key), f"requires {name!r} ({how})", True)
    ours_paging = {n for (w, n) in our_params if w == "query" and n in PAGINATION_PARAMS}
    theirs_paging = {n for (w, n) in their_params if w == "query" and n in PAGINATION_PARAMS}
    if ours_paging != theirs_paging:
        yield Difference(
            "pagination",
            _label(key),
            f"pages with {sorted(theirs_paging) or 'no parameters'}, we send "
            f"{sorted(ours_paging) or 'none'} (AUTOTALK_PAGING)",
            False,
        )


def _response(key: OpKey, ours: _Doc, theirs: _Doc) -> Iterator[Difference]:
    our_code, our_response = ours.success(key)
    their_code, their_response = theirs.success(key)
    if our_code != their_code and their_code is not None:
        yield Difference(
            "response-status", _label(key), f"answers {their_code}, we expect {our_code}", False
        )
    our_props, our_required = ours.schema_fields(ours.json_schema(our_response))
    their_props, _ = theirs.schema_fields(theirs.json_schema(their_response))
    if not their_props or our_props == their_props:
        return
    parts = []
    if our_props - their_props:
        missing = sorted(our_props - their_props)
        needed = sorted(set(missing) & our_required)
        parts.append(f"not in theirs: {', '.join(missing)}")
        if needed:
            parts.append(f"(our contract calls {', '.join(needed)} required)")
    if their_props - our_props:
        parts.append(f"only in theirs: {', '.join(sorted(their_props - our_props))}")
    yield Difference("response-fields", _label(key), " ".join(parts), False)


def _auth(ours: _Doc, theirs: _Doc) -> Iterator[Difference]:
    our_schemes, their_schemes = set(ours.schemes().values()), theirs.schemes()
    if set(their_schemes.values()) != our_schemes:
        yield Difference(
            "auth",
            "securitySchemes",
            f"the document has {sorted(set(their_schemes.values())) or 'none'}, "
            f"ours {sorted(our_schemes)}",
            False,
        )
    alternatives = theirs.security_alternatives()
    if not alternatives:
        return
    if not any(all(their_schemes.get(n) in SUPPORTED_AUTH for n in alt) for alt in alternatives):
        yield Difference(
            "auth",
            "security",
            f"no way to authenticate that the client can do (it sends {sorted(SUPPORTED_AUTH)}); "
            f"the document wants {[[their_schemes.get(n, n) for n in alt] for alt in alternatives]}",
            True,
        )


# ---- the x-assumed items -------------------------------------------------------------------


def _assumed_nodes(node: Any, pointer: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(node, Mapping):
        if node.get("x-assumed") is True:
            yield pointer, node
        for name, child in node.items():
            yield from _assumed_nodes(
                child, f"{pointer}/{str(name).replace('~', '~0').replace('/', '~1')}"
            )
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _assumed_nodes(child, f"{pointer}/{index}")


def _split(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


class _Judge:
    """Decides each ``x-assumed`` item: confirmed, refuted or not covered by the document."""

    def __init__(self, ours: _Doc, theirs: _Doc) -> None:
        self.ours, self.theirs = ours, theirs
        self.uses: dict[str, list[tuple[OpKey, str]]] = {}  # "#/components/x/y" -> [(op, where)]
        for key, (_, _, operation, shared) in ours.ops.items():
            for raw in [*shared, *(operation.get("parameters") or [])]:
                self._use(raw, key, "parameter")
            for code, response in (operation.get("responses") or {}).items():
                self._use(response, key, f"response {code}")
                schema = ours.json_schema(response)
                self._use(schema, key, f"schema {code}")
                if isinstance(schema, Mapping):
                    self._use(schema.get("items"), key, f"schema {code}")
            self._use(ours.json_schema(operation.get("requestBody")), key, "schema request")

    def _use(self, node: Any, key: OpKey, where: str) -> None:
        if isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            self.uses.setdefault(node["$ref"], []).append((key, where))

    def judge(self, pointer: str, node: Mapping[str, Any]) -> Assumption:
        verdict, reason = self._judge(_split(pointer), node)
        return Assumption(pointer, verdict, reason)

    def _judge(self, parts: list[str], node: Mapping[str, Any]) -> tuple[str, str]:
        ours, theirs = self.ours, self.theirs
        if parts[:1] == ["paths"] and len(parts) >= 3:
            path = parts[1]
            if parts[2] == "parameters":
                return self._param_on(node, [(m.upper(), ours.normal(path)) for m in HTTP_METHODS])
            key = (parts[2].upper(), ours.normal(path))
            if key not in theirs.ops:
                return "not covered", f"the document has no {_label(key)}"
            rest = parts[3:]
            if rest[:1] == ["parameters"]:
                return self._param_on(node, [key])
            if rest[:1] == ["requestBody"]:
                return self._body(key, node)
            if rest[:1] == ["responses"] and len(rest) >= 2:
                return self._status(key, rest[1])
            return "not covered", "no rule for this node"
        if parts[:2] == ["components", "parameters"] and len(parts) == 3:
            keys = [k for k, _ in self.uses.get(f"#/components/parameters/{parts[2]}", [])]
            return self._param_on(node, keys)
        if parts[:2] == ["components", "responses"] and len(parts) == 3:
            return self._shared_response(parts[2])
        if parts[:2] == ["components", "schemas"] and len(parts) >= 3:
            return self._schema(parts[2], parts[3:])
        if parts[:2] == ["components", "headers"] and len(parts) == 3:
            return self._header(parts[2])
        return "not covered", "an OpenAPI document does not describe this"

    def _param_on(self, node: Mapping[str, Any], keys: list[OpKey]) -> tuple[str, str]:
        param = self.ours.resolve(node)
        name, where = str(param.get("name", "")).lower(), str(param.get("in"))
        present = [k for k in keys if k in self.theirs.ops]
        if not present:
            return (
                "not covered",
                f"{where} parameter {name!r}: none of its operations is in the document",
            )
        having = [k for k in present if (where, name) in self.theirs.params(k)]
        if having:
            return (
                "confirmed",
                f"{where} parameter {name!r} on {len(having)}/{len(present)} operation(s)",
            )
        return "refuted", f"no {where} parameter {name!r} on {', '.join(map(_label, present))}"

    def _body(self, key: OpKey, node: Mapping[str, Any]) -> tuple[str, str]:
        their_body = self.theirs.resolve(self.theirs.ops[key][2].get("requestBody"))
        if not isinstance(their_body, Mapping):
            return "refuted", f"{_label(key)} takes no body"
        _, our_required = self.ours.schema_fields(self.ours.json_schema(node))
        their_props, their_required = self.theirs.schema_fields(self.theirs.json_schema(their_body))
        if not their_props and not their_required:
            return "not covered", f"{_label(key)}: the document's body schema names no fields"
        extra, unknown = their_required - our_required, our_required - their_props - their_required
        if extra or unknown:
            return "refuted", (
                f"{_label(key)} body: requires {sorted(extra) or 'nothing more'}, "
                f"lacks {sorted(unknown) or 'nothing'}"
            )
        return "confirmed", f"{_label(key)} body requires {sorted(their_required) or 'no field'}"

    def _status(self, key: OpKey, code: str) -> tuple[str, str]:
        responses = self.theirs.ops[key][2].get("responses") or {}
        codes = {str(c) for c in responses}
        if code in codes:
            return "confirmed", f"{_label(key)} answers {code}"
        if code.startswith("2"):
            success = sorted(c for c in codes if c.startswith("2"))
            return "refuted", f"{_label(key)} answers {', '.join(success) or 'no 2xx'}, not {code}"
        return "not covered", f"{_label(key)} lists no {code}"

    def _shared_response(self, name: str) -> tuple[str, str]:
        uses = [(k, w.split()[1]) for k, w in self.uses.get(f"#/components/responses/{name}", [])]
        present = [(k, c) for k, c in uses if k in self.theirs.ops]
        having = [
            (k, c)
            for k, c in present
            if c in {str(x) for x in (self.theirs.ops[k][2].get("responses") or {})}
        ]
        codes = sorted({c for _, c in uses})
        if having:
            return "confirmed", f"{'/'.join(codes)} on {len(having)}/{len(present)} operation(s)"
        return "not covered", f"the document lists no {'/'.join(codes) or 'such'} answer"

    def _schema(self, name: str, rest: list[str]) -> tuple[str, str]:
        places: list[Any] = []
        their_components = (self.theirs.raw.get("components") or {}).get("schemas") or {}
        if name in their_components:
            places.append(their_components[name])
        for key, where in self.uses.get(f"#/components/schemas/{name}", []):
            if key not in self.theirs.ops:
                continue
            _, _, operation, _ = self.theirs.ops[key]
            code = where.split()[1]
            holder = operation.get("requestBody") if code == "request" else None
            if holder is None:
                holder = (operation.get("responses") or {}).get(code)
            schema = self.theirs.json_schema(holder)
            if schema is not None:
                places.append(schema)
        places = [p for p in places if self.theirs.schema_fields(p) != (set(), set())]
        if not places:
            return "not covered", f"the document has no schema for {name}"
        their_props, _ = self.theirs.schema_fields(places[0])
        if rest[:1] == ["properties"] and len(rest) >= 2:
            prop = rest[1]
            if prop in their_props:
                return "confirmed", f"{name}.{prop} is in the document"
            return "refuted", f"{name} has no {prop!r} in the document"
        if rest:
            return "not covered", "no rule for this node"
        _, our_required = self.ours.schema_fields({"$ref": f"#/components/schemas/{name}"})
        missing = our_required - their_props
        if missing:
            return "refuted", f"{name}: the document lacks {sorted(missing)}"
        return "confirmed", f"{name}: the fields we require are all there"

    def _header(self, name: str) -> tuple[str, str]:
        header_names: set[str] = set()
        for _, _, operation, _ in self.ours.ops.values():
            for response in (operation.get("responses") or {}).values():
                headers = (self.ours.resolve(response) or {}).get("headers") or {}
                for header, value in headers.items():
                    if value == {"$ref": f"#/components/headers/{name}"}:
                        header_names.add(str(header).lower())
        theirs: set[str] = set()
        for _, _, operation, _ in self.theirs.ops.values():
            for response in (operation.get("responses") or {}).values():
                resolved = self.theirs.resolve(response)
                if isinstance(resolved, Mapping):
                    theirs |= {str(h).lower() for h in (resolved.get("headers") or {})}
        found = header_names & theirs
        if found:
            return "confirmed", f"the document's answers carry {', '.join(sorted(found))}"
        return "not covered", f"the document declares no {', '.join(sorted(header_names))} header"


def diff_contracts(
    theirs: Mapping[str, Any], ours: Mapping[str, Any] | None = None
) -> ContractDiff:
    """How ``theirs`` (an OpenAPI document) differs from ``ours`` (default: our contract).

    Raises SpecError when ``theirs`` is not shaped like an OpenAPI 3 document.
    """
    if not isinstance(theirs.get("paths"), Mapping):
        raise SpecError("the document is not an OpenAPI document (no 'paths' object)")
    try:
        return _diff(theirs, ours if ours is not None else load_contract())
    except (AttributeError, TypeError, KeyError) as exc:
        # a node of the wrong type somewhere (a list where OpenAPI has an object, ...)
        raise SpecError(
            f"the document is not shaped like OpenAPI 3 ({type(exc).__name__}: {exc})"[:400]
        ) from None


def _diff(theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> ContractDiff:
    mine, other = _Doc(ours), _Doc(theirs)
    differences = [*_operations(mine, other), *_auth(mine, other)]
    for key in mine.ops:
        if key in other.ops:
            differences += [
                *_request(key, mine, other),
                *_parameters(key, mine, other),
                *_response(key, mine, other),
            ]
    differences.sort(key=lambda d: not d.breaking)
    judge = _Judge(mine, other)
    assumptions = [judge.judge(pointer, node) for pointer, node in _assumed_nodes(mine.raw)]
    return ContractDiff(differences, assumptions)
