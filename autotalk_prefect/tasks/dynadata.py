"""Tasks for Dynadata (contacts, orders, any custom type): types, items, schemas, functions.

Logs name the type, ids, counts and function names; never item contents, function arguments
or results (they are customer data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotalk_prefect._compat import async_dispatch
from autotalk_prefect.api.models import DynadataItem, DynadataType, FunctionResult, ValidationResult
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.tasks._common import (
    async_client,
    atake,
    autotalk_task,
    outcome_reported,
    plural,
    run_logger,
    sync_client,
    take,
)

# ---- list_dynadata_types ------------------------------------------------------------------------


@autotalk_task("list-dynadata-types", "list_dynadata_types")
async def alist_dynadata_types(
    credentials: AutoTalkCredentials | None = None,
) -> list[DynadataType]:
    """GET /dynadata/types: every Dynadata type with its functions.

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    async with async_client(credentials) as client:
        types = await client.list_dynadata_types()
    run_logger().info("Listed %s", plural(len(types), "Dynadata type"))
    return types


@async_dispatch(alist_dynadata_types)
@autotalk_task("list-dynadata-types", "list_dynadata_types")
def list_dynadata_types(credentials: AutoTalkCredentials | None = None) -> list[DynadataType]:
    """GET /dynadata/types: every Dynadata type with its functions.

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    with sync_client(credentials) as client:
        types = client.list_dynadata_types()
    run_logger().info("Listed %s", plural(len(types), "Dynadata type"))
    return types


# ---- list_dynadata_items ------------------------------------------------------------------------


@autotalk_task("list-dynadata-items", "list_dynadata_items-{type}")
async def alist_dynadata_items(
    type: str,
    credentials: AutoTalkCredentials | None = None,
    max_items: int | None = None,
    **filters: Any,
) -> list[DynadataItem]:
    """GET /dynadata/type/{type}/list: every item of a type (or the first ``max_items``).

    ``filters``: ``updatedSince`` and equality filters on top-level fields (``status="active"``).
    Prefect retries stay 0: the client retries each page request by its own rules.
    """
    async with async_client(credentials) as client:
        items = await atake(client.list_dynadata_items(type, **filters), max_items)
    run_logger().info("Listed %s of type %r", plural(len(items), "item"), type)
    return items


@async_dispatch(alist_dynadata_items)
@autotalk_task("list-dynadata-items", "list_dynadata_items-{type}")
def list_dynadata_items(
    type: str,
    credentials: AutoTalkCredentials | None = None,
    max_items: int | None = None,
    **filters: Any,
) -> list[DynadataItem]:
    """GET /dynadata/type/{type}/list: every item of a type (or the first ``max_items``).

    ``filters``: ``updatedSince`` and equality filters on top-level fields (``status="active"``).
    Prefect retries stay 0: the client retries each page request by its own rules.
    """
    with sync_client(credentials) as client:
        items = take(client.list_dynadata_items(type, **filters), max_items)
    run_logger().info("Listed %s of type %r", plural(len(items), "item"), type)
    return items


# ---- get_dynadata_item --------------------------------------------------------------------------


@autotalk_task("get-dynadata-item", "get_dynadata_item-{type}-{item_id}")
async def aget_dynadata_item(
    type: str, item_id: str, credentials: AutoTalkCredentials | None = None
) -> DynadataItem:
    """GET /dynadata/type/{type}/item/{_id}: one item (``NotFoundError`` if it does not exist).

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    async with async_client(credentials) as client:
        item = await client.get_dynadata_item(type, item_id)
    run_logger().info("Read %r item %s", type, item.id)
    return item


@async_dispatch(aget_dynadata_item)
@autotalk_task("get-dynadata-item", "get_dynadata_item-{type}-{item_id}")
def get_dynadata_item(
    type: str, item_id: str, credentials: AutoTalkCredentials | None = None
) -> DynadataItem:
    """GET /dynadata/type/{type}/item/{_id}: one item (``NotFoundError`` if it does not exist).

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    with sync_client(credentials) as client:
        item = client.get_dynadata_item(type, item_id)
    run_logger().info("Read %r item %s", type, item.id)
    return item


# ---- create_dynadata_item -----------------------------------------------------------------------


@autotalk_task("create-dynadata-item", "create_dynadata_item-{type}")
async def acreate_dynadata_item(
    type: str, data: Mapping[str, Any], credentials: AutoTalkCredentials | None = None
) -> DynadataItem:
    """POST /dynadata/type/{type}/create: create an item (its fields in ``data``).

    Schema violations raise ``InvalidRequestError`` naming each field. Not idempotent: an
    ambiguous failure raises ``OutcomeUnknownError`` (pass your own ``_id`` in ``data`` to make
    a re-run detectable as ``ConflictError``). Prefect retries stay 0.
    """
    async with async_client(credentials) as client:
        with outcome_reported(f"create_dynadata_item of type {type}", create=True):
            item = await client.create_dynadata_item(type, data)
    run_logger().info("Created %r item %s", type, item.id)
    return item


@async_dispatch(acreate_dynadata_item)
@autotalk_task("create-dynadata-item", "create_dynadata_item-{type}")
def create_dynadata_item(
    type: str, data: Mapping[str, Any], credentials: AutoTalkCredentials | None = None
) -> DynadataItem:
    """POST /dynadata/type/{type}/create: create an item (its fields in ``data``).

    Schema violations raise ``InvalidRequestError`` naming each field. Not idempotent: an
    ambiguous failure raises ``OutcomeUnknownError`` (pass your own ``_id`` in ``data`` to make
    a re-run detectable as ``ConflictError``). Prefect retries stay 0.
    """
    with (
        sync_client(credentials) as client,
        outcome_reported(f"create_dynadata_item of type {type}", create=True),
    ):
        item = client.create_dynadata_item(type, data)
    run_logger().info("Created %r item %s", type, item.id)
    return item


# ---- update_dynadata_item -----------------------------------------------------------------------


@autotalk_task("update-dynadata-item", "update_dynadata_item-{type}-{item_id}")
async def aupdate_dynadata_item(
    type: str,
    item_id: str,
    data: Mapping[str, Any],
    credentials: AutoTalkCredentials | None = None,
) -> DynadataItem:
    """PUT /dynadata/type/{type}/update: merge ``data`` into the item; returns the whole item.

    Idempotent, so the client may retry it. Prefect retries stay 0.
    """
    async with async_client(credentials) as client:
        item = await client.update_dynadata_item(type, item_id, data)
    run_logger().info("Updated %r item %s (%s)", type, item.id, plural(len(data), "field"))
    return item


@async_dispatch(aupdate_dynadata_item)
@autotalk_task("update-dynadata-item", "update_dynadata_item-{type}-{item_id}")
def update_dynadata_item(
    type: str,
    item_id: str,
    data: Mapping[str, Any],
    credentials: AutoTalkCredentials | None = None,
) -> DynadataItem:
    """PUT /dynadata/type/{type}/update: merge ``data`` into the item; returns the whole item.

    Idempotent, so the client may retry it. Prefect retries stay 0.
    """
    with sync_client(credentials) as client:
        item = client.update_dynadata_item(type, item_id, data)
    run_logger().info("Updated %r item %s (%s)", type, item.id, plural(len(data), "field"))
    return item


# ---- validate_dynadata_item ---------------------------------------------------------------------


def _log_validation(type: str, result: ValidationResult) -> None:
    if result.valid:
        run_logger().info("Document is valid for type %r", type)
    else:  # field paths only: the messages could quote the values
        fields = ", ".join(sorted({issue.path for issue in result.errors}))
        run_logger().info("Document is not valid for type %r (fields: %s)", type, fields)


@autotalk_task("validate-dynadata-item", "validate_dynadata_item-{type}")
async def avalidate_dynadata_item(
    type: str, data: Mapping[str, Any], credentials: AutoTalkCredentials | None = None
) -> ValidationResult:
    """POST /dynadata/type/{type}/validate: check ``data`` against the schema, storing nothing.

    An invalid document is an answer (``valid=False`` with ``errors``), not an exception.
    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    async with async_client(credentials) as client:
        result = await client.validate_dynadata_item(type, data)
    _log_validation(type, result)
    return result


@async_dispatch(avalidate_dynadata_item)
@autotalk_task("validate-dynadata-item", "validate_dynadata_item-{type}")
def validate_dynadata_item(
    type: str, data: Mapping[str, Any], credentials: AutoTalkCredentials | None = None
) -> ValidationResult:
    """POST /dynadata/type/{type}/validate: check ``data`` against the schema, storing nothing.

    An invalid document is an answer (``valid=False`` with ``errors``), not an exception.
    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    with sync_client(credentials) as client:
        result = client.validate_dynadata_item(type, data)
    _log_validation(type, result)
    return result


# ---- get_dynadata_schema ------------------------------------------------------------------------


@autotalk_task("get-dynadata-schema", "get_dynadata_schema-{type}")
async def aget_dynadata_schema(
    type: str, credentials: AutoTalkCredentials | None = None
) -> dict[str, Any]:
    """GET /dynadata/type/{type}/schema: the type's JSON Schema (a plain dict).

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    async with async_client(credentials) as client:
        schema = await client.get_dynadata_schema(type)
    run_logger().info("Read the JSON Schema of type %r", type)
    return schema


@async_dispatch(aget_dynadata_schema)
@autotalk_task("get-dynadata-schema", "get_dynadata_schema-{type}")
def get_dynadata_schema(
    type: str, credentials: AutoTalkCredentials | None = None
) -> dict[str, Any]:
    """GET /dynadata/type/{type}/schema: the type's JSON Schema (a plain dict).

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    with sync_client(credentials) as client:
        schema = client.get_dynadata_schema(type)
    run_logger().info("Read the JSON Schema of type %r", type)
    return schema


# ---- get_dynadata_zod_schema --------------------------------------------------------------------


@autotalk_task("get-dynadata-zod-schema", "get_dynadata_zod_schema-{type}")
async def aget_dynadata_zod_schema(
    type: str, credentials: AutoTalkCredentials | None = None
) -> str:
    """GET /dynadata/type/{type}/schema/zod: the type's Zod schema as source text.

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    async with async_client(credentials) as client:
        source = await client.get_dynadata_zod_schema(type)
    run_logger().info("Read the Zod schema of type %r (%d characters)", type, len(source))
    return source


@async_dispatch(aget_dynadata_zod_schema)
@autotalk_task("get-dynadata-zod-schema", "get_dynadata_zod_schema-{type}")
def get_dynadata_zod_schema(type: str, credentials: AutoTalkCredentials | None = None) -> str:
    """GET /dynadata/type/{type}/schema/zod: the type's Zod schema as source text.

    Prefect retries stay 0: the client retries HTTP failures by its own safe rules.
    """
    with sync_client(credentials) as client:
        source = client.get_dynadata_zod_schema(type)
    run_logger().info("Read the Zod schema of type %r (%d characters)", type, len(source))
    return source


# ---- execute_dynadata_function ------------------------------------------------------------------


@autotalk_task("execute-dynadata-function", "execute_dynadata_function-{type}-{function_name}")
async def aexecute_dynadata_function(
    type: str,
    function_name: str,
    args: Mapping[str, Any] | None = None,
    credentials: AutoTalkCredentials | None = None,
) -> FunctionResult:
    """POST /dynadata/type/{type}/executeFunction/{fn}: run a type-level function.

    Not idempotent (a function may act): an ambiguous failure raises ``OutcomeUnknownError``.
    Prefect retries stay 0.
    """
    async with async_client(credentials) as client:
        with outcome_reported(f"execute_dynadata_function {type}.{function_name}"):
            result = await client.execute_dynadata_function(type, function_name, args)
    run_logger().info("Ran function %r of type %r", function_name, type)
    return result


@async_dispatch(aexecute_dynadata_function)
@autotalk_task("execute-dynadata-function", "execute_dynadata_function-{type}-{function_name}")
def execute_dynadata_function(
    type: str,
    function_name: str,
    args: Mapping[str, Any] | None = None,
    credentials: AutoTalkCredentials | None = None,
) -> FunctionResult:
    """POST /dynadata/type/{type}/executeFunction/{fn}: run a type-level function.

    Not idempotent (a function may act): an ambiguous failure raises ``OutcomeUnknownError``.
    Prefect retries stay 0.
    """
    with (
        sync_client(credentials) as client,
        outcome_reported(f"execute_dynadata_function {type}.{function_name}"),
    ):
        result = client.execute_dynadata_function(type, function_name, args)
    run_logger().info("Ran function %r of type %r", function_name, type)
    return result


# ---- execute_dynadata_item_function -------------------------------------------------------------

_ITEM_FN_RUN_NAME = "execute_dynadata_item_function-{type}-{item_id}-{function_name}"


@autotalk_task("execute-dynadata-item-function", _ITEM_FN_RUN_NAME)
async def aexecute_dynadata_item_function(
    type: str,
    item_id: str,
    function_name: str,
    args: Mapping[str, Any] | None = None,
    credentials: AutoTalkCredentials | None = None,
) -> FunctionResult:
    """POST /dynadata/type/{type}/item/{_id}/executeFunction/{fn}: run an item-level function.

    Not idempotent (a function may act): an ambiguous failure raises ``OutcomeUnknownError``.
    Prefect retries stay 0.
    """
    async with async_client(credentials) as client:
        with outcome_reported(f"execute_dynadata_item_function {type}/{item_id}.{function_name}"):
            result = await client.execute_dynadata_item_function(type, item_id, function_name, args)
    run_logger().info("Ran function %r on %r item %s", function_name, type, item_id)
    return result


@async_dispatch(aexecute_dynadata_item_function)
@autotalk_task("execute-dynadata-item-function", _ITEM_FN_RUN_NAME)
def execute_dynadata_item_function(
    type: str,
    item_id: str,
    function_name: str,
    args: Mapping[str, Any] | None = None,
    credentials: AutoTalkCredentials | None = None,
) -> FunctionResult:
    """POST /dynadata/type/{type}/item/{_id}/executeFunction/{fn}: run an item-level function.

    Not idempotent (a function may act): an ambiguous failure raises ``OutcomeUnknownError``.
    Prefect retries stay 0.
    """
    with (
        sync_client(credentials) as client,
        outcome_reported(f"execute_dynadata_item_function {type}/{item_id}.{function_name}"),
    ):
        result = client.execute_dynadata_item_function(type, item_id, function_name, args)
    run_logger().info("Ran function %r on %r item %s", function_name, type, item_id)
    return result


__all__ = [
    "acreate_dynadata_item",
    "aexecute_dynadata_function",
    "aexecute_dynadata_item_function",
    "aget_dynadata_item",
    "aget_dynadata_schema",
    "aget_dynadata_zod_schema",
    "alist_dynadata_items",
    "alist_dynadata_types",
    "aupdate_dynadata_item",
    "avalidate_dynadata_item",
    "create_dynadata_item",
    "execute_dynadata_function",
    "execute_dynadata_item_function",
    "get_dynadata_item",
    "get_dynadata_schema",
    "get_dynadata_zod_schema",
    "list_dynadata_items",
    "list_dynadata_types",
    "update_dynadata_item",
    "validate_dynadata_item",
]
