"""One Prefect task per AutoTalk endpoint, grouped by API area, in a sync and an async form.

Each endpoint has an async task ``a<name>`` and a public ``<name>`` built with
``@async_dispatch(a<name>)`` over a sync ``@task`` (the order matters: the reverse would always
run the sync path). What that means for you:

* In a sync flow, ``send_message(...)`` runs the sync task and returns its result.
* In an async flow (or anywhere an event loop runs), ``await send_message(...)`` runs the async
  task. ``send_message(..., _sync=True)`` forces the sync path.
* ``send_message`` itself is a plain function, not a ``Task``: it has no ``.submit``, ``.map`` or
  ``.with_options``. Use the async task for those (``asend_message.map(...)`` works in sync
  flows too), or the sync ``Task`` object at ``send_message.__wrapped__``. ``send_message.aio``
  is ``asend_message``.

Every task takes ``credentials: AutoTalkCredentials | None = None``; ``None`` builds them from
``AutoTalkSettings`` (``AUTOTALK_API_KEY``, ``AUTOTALK_BASE_URL``, ... or a ``.env`` file) in the
process that runs the task. Task retries are 0 and caching is off (``NO_CACHE``): the client
retries HTTP failures by rules that never re-send a non-idempotent call, and stacking Prefect
retries on top would multiply attempts or send a message twice. List tasks read every page and
return a list; ``max_items`` stops early.

Logs name ids, types, counts and function names. They never contain the API key, message text,
item contents, function arguments or results: those are customer data, and Prefect ships run
logs to its API.
"""

from __future__ import annotations

from autotalk_prefect.tasks.assistants import alist_assistants, list_assistants
from autotalk_prefect.tasks.company import aget_self, get_self
from autotalk_prefect.tasks.conversations import (
    acreate_conversation,
    alist_conversations,
    alist_messages,
    aprocess_messages,
    create_conversation,
    list_conversations,
    list_messages,
    process_messages,
)
from autotalk_prefect.tasks.dynadata import (
    acreate_dynadata_item,
    aexecute_dynadata_function,
    aexecute_dynadata_item_function,
    aget_dynadata_item,
    aget_dynadata_schema,
    aget_dynadata_zod_schema,
    alist_dynadata_items,
    alist_dynadata_types,
    aupdate_dynadata_item,
    avalidate_dynadata_item,
    create_dynadata_item,
    execute_dynadata_function,
    execute_dynadata_item_function,
    get_dynadata_item,
    get_dynadata_schema,
    get_dynadata_zod_schema,
    list_dynadata_items,
    list_dynadata_types,
    update_dynadata_item,
    validate_dynadata_item,
)
from autotalk_prefect.tasks.integrations import alist_channels, list_channels
from autotalk_prefect.tasks.messages import asend_message, send_message

__all__ = [
    "acreate_conversation",
    "acreate_dynadata_item",
    "aexecute_dynadata_function",
    "aexecute_dynadata_item_function",
    "aget_dynadata_item",
    "aget_dynadata_schema",
    "aget_dynadata_zod_schema",
    "aget_self",
    "alist_assistants",
    "alist_channels",
    "alist_conversations",
    "alist_dynadata_items",
    "alist_dynadata_types",
    "alist_messages",
    "aprocess_messages",
    "asend_message",
    "aupdate_dynadata_item",
    "avalidate_dynadata_item",
    "create_conversation",
    "create_dynadata_item",
    "execute_dynadata_function",
    "execute_dynadata_item_function",
    "get_dynadata_item",
    "get_dynadata_schema",
    "get_dynadata_zod_schema",
    "get_self",
    "list_assistants",
    "list_channels",
    "list_conversations",
    "list_dynadata_items",
    "list_dynadata_types",
    "list_messages",
    "process_messages",
    "send_message",
    "update_dynadata_item",
    "validate_dynadata_item",
]
