"""A dlt source for AutoTalk: Dynadata types, conversations, messages, channels and assistants.

dlt brings what a warehouse sync needs and we should not hand-write: schema inference and
evolution, merge by primary key, incremental cursors kept in pipeline state, and loaders for
DuckDB, PostgreSQL, BigQuery, Snowflake and the rest. This module only feeds it: every request
goes through our :class:`~autotalk_prefect.api.client.AutoTalkClient` (auth, retries, error mapping
stay in one place), one page at a time, so a type never sits in memory whole.

Install with ``pip install 'autotalk-prefect[dlt]'``. Tables (one per resource, ``_id`` the
primary key)::

    <type>         one per Dynadata type, merge, incremental on updatedAt (updatedSince filter)
    conversations  merge, incremental on updatedAt (updatedSince filter)
    messages       merge; read for every conversation the conversations resource yields, so an
                   incremental run reads only the conversations that changed
    channels       replace (small, unpaged)
    assistants     replace (small, unpaged)

Nested values (arrays, objects) land in JSON columns (``max_table_nesting=0``): one table per
resource, easy to merge. Set ``source.max_table_nesting = 1`` to unnest them into child tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

try:
    import dlt
    from dlt.extract import DltResource, DltSource
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "autotalk_prefect.flows.sync.source needs dlt: pip install 'autotalk-prefect[dlt]'"
    ) from exc

from autotalk_prefect.api.client import AutoTalkClient
from autotalk_prefect.api.models import WireModel
from autotalk_prefect.credentials import AutoTalkCredentials, resolve_credentials

__all__ = [
    "CURSOR_FIELD",
    "FIXED_RESOURCES",
    "SOURCE_NAME",
    "autotalk_source",
    "columns_from_json_schema",
    "dynadata_table_name",
]

SOURCE_NAME = "autotalk"
CURSOR_FIELD = "updatedAt"
"""The last-updated field of Dynadata items and conversations; ``updatedSince`` filters on it."""
FIXED_RESOURCES = ("conversations", "messages", "channels", "assistants")
MAX_PAGE_SIZE = 1000

Row = dict[str, Any]
Page = list[Row]
PageCounter = Callable[[str], None]

_TIMESTAMPS: dict[str, Any] = {
    "createdAt": {"data_type": "timestamp", "nullable": True},
    "updatedAt": {"data_type": "timestamp", "nullable": True},
}
_ID: dict[str, Any] = {"_id": {"data_type": "text", "nullable": False}}

_SCALARS = {"integer": "bigint", "number": "double", "boolean": "bool", "string": "text"}
_STRING_FORMATS = {"date-time": "timestamp", "date": "date"}


# ---- schema hints ------------------------------------------------------------------------------


def _json_type(prop: Mapping[str, Any]) -> str | None:
    """The one non-null JSON type of a property, or ``None`` when it allows several."""
    declared = prop.get("type")
    if isinstance(declared, str):
        return declared
    if isinstance(declared, list):
        kinds = [t for t in declared if t != "null"]
        if len(kinds) == 1 and isinstance(kinds[0], str):
            return kinds[0]
    return None


def _data_type(prop: Mapping[str, Any]) -> str | None:
    kind = _json_type(prop)
    if kind in ("object", "array"):
        return "json"
    if kind == "string":
        return _STRING_FORMATS.get(str(prop.get("format", "")), "text")
    return _SCALARS.get(kind or "")


def columns_from_json_schema(schema: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """dlt column hints for a Dynadata type's JSON Schema (top-level ``properties``).

    Each property with one clear JSON type gets a column type (string -> text, or timestamp/date
    by ``format``; integer -> bigint; number -> double; boolean -> bool; object and array ->
    json) and its ``description``. Properties with mixed or missing types are left to dlt's own
    inference. Every column stays nullable: a schema's ``required`` is not a promise that old
    documents kept.
    """
    columns: dict[str, dict[str, Any]] = {}
    properties = (schema or {}).get("properties")
    if not isinstance(properties, Mapping):
        return {**_ID, **_TIMESTAMPS}
    for name, prop in properties.items():
        if not isinstance(name, str) or not isinstance(prop, Mapping):
            continue
        data_type = _data_type(prop)
        if data_type is None:
            continue
        column: dict[str, Any] = {"data_type": data_type, "nullable": True}
        if isinstance(prop.get("description"), str):
            column["description"] = prop["description"]
        columns[name] = column
    return {**columns, **_ID, **_TIMESTAMPS}


def dynadata_table_name(type_name: str) -> str:
    """The table of a Dynadata type: its own name, unless a fixed resource already has it."""
    return f"dynadata_{type_name}" if type_name in FIXED_RESOURCES else type_name


# ---- resources ---------------------------------------------------------------------------------


def _rows(page: Sequence[WireModel]) -> Page:
    return [item.to_wire() for item in page]


def _cursor(incremental: bool) -> Any:
    """The ``updatedAt`` cursor; ``None`` when the run reads everything.

    Deduplication is off (``primary_key=()``): the API's ``updatedSince`` is inclusive, so rows
    on the boundary come again and the merge on ``_id`` absorbs them, with no per-row hashes
    growing in the pipeline state.
    """
    if not incremental:
        return None
    return dlt.sources.incremental(
        CURSOR_FIELD, initial_value=None, primary_key=(), on_cursor_value_missing="include"
    )


def _since(cursor: Any) -> dict[str, str]:
    """The ``updatedSince`` filter from the state saved by the last successful run."""
    start = getattr(cursor, "start_value", None) if cursor is not None else None
    return {"updatedSince": str(start)} if start else {}


def _counted(name: str, pages: Iterable[Page], on_page: PageCounter | None) -> Iterator[Page]:
    for page in pages:
        if on_page is not None:
            on_page(name)
        yield page


def _dynadata_resource(
    credentials: AutoTalkCredentials,
    type_name: str,
    schema: Mapping[str, Any] | None,
    *,
    incremental: bool,
    page_size: int,
    on_page: PageCounter | None,
) -> DltResource:
    table = dynadata_table_name(type_name)
    cursor_arg = _cursor(incremental)

    def items(cursor: Any = cursor_arg) -> Iterator[Page]:
        with credentials.get_client() as client:
            pages = client.iter_dynadata_pages(type_name, page_size=page_size, **_since(cursor))
            yield from _counted(table, (_rows(page) for page in pages), on_page)

    return dlt.resource(
        items,
        name=table,
        table_name=table,
        primary_key="_id",
        write_disposition="merge",
        columns=cast(Any, columns_from_json_schema(schema)),
    )


def _conversations_resource(
    credentials: AutoTalkCredentials,
    *,
    incremental: bool,
    page_size: int,
    on_page: PageCounter | None,
) -> DltResource:
    cursor_arg = _cursor(incremental)

    def conversations(cursor: Any = cursor_arg) -> Iterator[Page]:
        with credentials.get_client() as client:
            pages = client.iter_conversation_pages(page_size=page_size, **_since(cursor))
            yield from _counted("conversations", (_rows(page) for page in pages), on_page)

    return dlt.resource(
        conversations,
        name="conversations",
        primary_key="_id",
        write_disposition="merge",
        columns=cast(Any, {**_ID, **_TIMESTAMPS}),
    )


def _messages_transformer(
    credentials: AutoTalkCredentials, *, page_size: int, on_page: PageCounter | None
) -> DltResource:
    def messages(conversations: Page | Row) -> Iterator[Page]:
        batch = conversations if isinstance(conversations, list) else [conversations]
        with credentials.get_client() as client:
            for conversation in batch:
                pages = client.iter_message_pages(conversation["_id"], page_size=page_size)
                yield from _counted("messages", (_rows(page) for page in pages), on_page)

    return dlt.transformer(
        messages,
        name="messages",
        primary_key="_id",
        write_disposition="merge",
        columns=cast(Any, {**_ID, "createdAt": _TIMESTAMPS["createdAt"]}),
    )


def _small_resource(
    credentials: AutoTalkCredentials,
    name: str,
    fetch: Callable[[AutoTalkClient], Sequence[WireModel]],
    on_page: PageCounter | None,
) -> DltResource:
    def rows() -> Iterator[Page]:
        with credentials.get_client() as client:
            yield from _counted(name, [_rows(fetch(client))], on_page)

    return dlt.resource(
        rows, name=name, primary_key="_id", write_disposition="replace", columns=cast(Any, _ID)
    )


# ---- the source --------------------------------------------------------------------------------


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def _autotalk(resources: list[DltResource]) -> list[DltResource]:
    return resources


def _check_page_size(page_size: int) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise TypeError(f"page_size must be an int, got {type(page_size).__name__}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def _select_types(available: Sequence[str], types: Sequence[str] | None) -> list[str]:
    if types is None:
        return list(available)
    if isinstance(types, str):
        raise TypeError(f"types must be a list of type names, got the string {types!r}")
    unknown = [t for t in types if t not in available]
    if unknown:
        raise ValueError(
            f"unknown Dynadata type(s) {', '.join(map(repr, unknown))}; "
            f"the API offers: {', '.join(available) or 'none'}"
        )
    return list(dict.fromkeys(types))


def autotalk_source(
    credentials: AutoTalkCredentials | None = None,
    types: list[str] | None = None,
    incremental: bool = True,
    page_size: int = 100,
    *,
    on_page: PageCounter | None = None,
) -> DltSource:
    """The AutoTalk dlt source: one resource per Dynadata type, plus conversations, messages,
    channels and assistants.

    Args:
        credentials: the block to use; ``None`` reads ``AUTOTALK_API_KEY``/``AUTOTALK_BASE_URL``.
        types: Dynadata types to sync (``None``: every type the API lists). Unknown names raise
            ``ValueError`` naming them. Pick other resources with ``source.with_resources(...)``.
        incremental: read only what changed since the last successful run (``updatedSince``
            from the cursor dlt keeps in the pipeline state); ``False`` reads everything and
            still merges by ``_id``.
        page_size: items per request (the server may cap it lower).
        on_page: called with the table name after each page is read (progress, metrics).

    The type list and each type's JSON Schema are read now (column types and descriptions come
    from the schema); the items are read when the pipeline extracts.
    """
    creds = resolve_credentials(credentials)
    size = _check_page_size(page_size)
    with creds.get_client() as client:
        selected = _select_types([t.name for t in client.list_dynadata_types()], types)
        schemas = {name: client.get_dynadata_schema(name) for name in selected}
    resources = [
        _dynadata_resource(
            creds, name, schemas[name], incremental=incremental, page_size=size, on_page=on_page
        )
        for name in selected
    ]
    conversations = _conversations_resource(
        creds, incremental=incremental, page_size=size, on_page=on_page
    )
    messages = conversations | _messages_transformer(creds, page_size=size, on_page=on_page)
    resources += [
        conversations,
        messages,
        _small_resource(creds, "channels", lambda c: c.list_channels(), on_page),
        _small_resource(creds, "assistants", lambda c: c.list_assistants(), on_page),
    ]
    return _autotalk(resources)
