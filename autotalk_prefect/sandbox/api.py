"""The 18 AutoTalk endpoints under ``/v1``, each a thin adapter from HTTP to ``SandboxState``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autotalk_prefect.sandbox.http import (
    check_body,
    endpoint,
    json_response,
    page_params,
    read_object,
    updated_since_param,
)
from autotalk_prefect.sandbox.problems import bad_request, validation_failed
from autotalk_prefect.sandbox.runtime import SandboxRuntime

LIST_RESERVED = frozenset({"limit", "skip", "updatedSince"})


def _listing(data: list[Any]) -> dict[str, Any]:
    return {"data": data, "total": len(data)}


def _args(body: dict[str, Any]) -> dict[str, Any]:
    args = body.get("args", {})
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise validation_failed([{"path": "args", "message": "must be an object"}])
    return args


def api_routes(runtime: SandboxRuntime) -> list[Route]:
    """The routes, bound to one runtime."""
    state = runtime.state
    cap = runtime.config.max_page_size

    @endpoint
    async def get_self(request: Request) -> Response:
        return json_response(state.get_company())

    @endpoint
    async def send_message(request: Request) -> Response:
        body = await read_object(request)
        check_body("SendMessageRequest", body)
        return json_response(state.send_message(request.path_params["contactId"], body), 201)

    @endpoint
    async def list_conversations(request: Request) -> Response:
        limit, skip = page_params(request, cap)
        query = request.query_params
        status = query.get("status")
        if status is not None and status not in ("open", "closed"):
            raise bad_request(f"query parameter status must be open or closed, got {status!r}")
        page = state.list_conversations(
            limit=limit,
            skip=skip,
            contact_id=query.get("contactId"),
            status=status,
            updated_since=updated_since_param(request),
        )
        return json_response(page.envelope())

    @endpoint
    async def create_conversation(request: Request) -> Response:
        body = await read_object(request)
        check_body("CreateConversationRequest", body)
        return json_response(state.create_conversation(body), 201)

    @endpoint
    async def process_messages(request: Request) -> Response:
        body = await read_object(request)
        check_body("ProcessMessagesRequest", body)
        result = state.process_messages(request.path_params["id"], body["messages"])
        return json_response(result)

    @endpoint
    async def list_messages(request: Request) -> Response:
        limit, skip = page_params(request, cap)
        page = state.list_messages(request.path_params["id"], limit=limit, skip=skip)
        return json_response(page.envelope())

    @endpoint
    async def list_types(request: Request) -> Response:
        return json_response(_listing(state.list_types()))

    @endpoint
    async def list_items(request: Request) -> Response:
        limit, skip = page_params(request, cap)
        filters = {k: v for k, v in request.query_params.items() if k not in LIST_RESERVED}
        page = state.list_items(
            request.path_params["type"],
            limit=limit,
            skip=skip,
            updated_since=updated_since_param(request),
            filters=filters,
        )
        return json_response(page.envelope())

    @endpoint
    async def get_item(request: Request) -> Response:
        params = request.path_params
        return json_response(state.get_item(params["type"], params["item_id"]))

    @endpoint
    async def create_item(request: Request) -> Response:
        body = await read_object(request)
        return json_response(state.create_item(request.path_params["type"], body), 201)

    @endpoint
    async def update_item(request: Request) -> Response:
        body = await read_object(request)
        return json_response(state.update_item(request.path_params["type"], body))

    @endpoint
    async def validate_item(request: Request) -> Response:
        body = await read_object(request)
        return json_response(state.validate_item(request.path_params["type"], body))

    @endpoint
    async def get_schema(request: Request) -> Response:
        return json_response(state.get_schema(request.path_params["type"]))

    @endpoint
    async def get_zod(request: Request) -> Response:
        type_name = request.path_params["type"]
        return json_response({"type": type_name, "zod": state.get_zod(type_name)})

    @endpoint
    async def execute_function(request: Request) -> Response:
        body = await read_object(request, empty={})
        params = request.path_params
        result = state.execute_function(params["type"], params["fn"], _args(body))
        return json_response({"result": result})

    @endpoint
    async def execute_item_function(request: Request) -> Response:
        body = await read_object(request, empty={})
        params = request.path_params
        result = state.execute_item_function(
            params["type"], params["item_id"], params["fn"], _args(body)
        )
        return json_response({"result": result})

    @endpoint
    async def list_channels(request: Request) -> Response:
        return json_response(_listing(state.list_channels()))

    @endpoint
    async def list_assistants(request: Request) -> Response:
        return json_response(_listing(state.list_assistants()))

    v1 = "/v1"
    dyn = f"{v1}/dynadata/type/{{type}}"
    return [
        Route(f"{v1}/self", get_self, methods=["GET"]),
        Route(f"{v1}/contacts/{{contactId}}/send_message", send_message, methods=["POST"]),
        Route(f"{v1}/conversations", list_conversations, methods=["GET"]),
        Route(f"{v1}/conversations", create_conversation, methods=["POST"]),
        Route(f"{v1}/conversations/{{id}}/messages", process_messages, methods=["POST"]),
        Route(f"{v1}/conversations/{{id}}/messages", list_messages, methods=["GET"]),
        Route(f"{v1}/dynadata/types", list_types, methods=["GET"]),
        Route(f"{dyn}/list", list_items, methods=["GET"]),
        Route(f"{dyn}/item/{{item_id}}", get_item, methods=["GET"]),
        Route(f"{dyn}/create", create_item, methods=["POST"]),
        Route(f"{dyn}/update", update_item, methods=["PUT"]),
        Route(f"{dyn}/validate", validate_item, methods=["POST"]),
        Route(f"{dyn}/schema", get_schema, methods=["GET"]),
        Route(f"{dyn}/schema/zod", get_zod, methods=["GET"]),
        Route(f"{dyn}/executeFunction/{{fn}}", execute_function, methods=["POST"]),
        Route(
            f"{dyn}/item/{{item_id}}/executeFunction/{{fn}}",
            execute_item_function,
            methods=["POST"],
        ),
        Route(f"{v1}/integrations/channels", list_channels, methods=["GET"]),
        Route(f"{v1}/assistants", list_assistants, methods=["GET"]),
    ]
