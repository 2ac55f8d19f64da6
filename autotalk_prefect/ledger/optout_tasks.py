"""Prefect tasks for the opt-out list: ``opt_out`` / ``aopt_out`` and ``opt_in`` / ``aopt_in``.

For flows of your own that learn of a STOP elsewhere (a form, a CRM, a complaint): the next
claim of every send path reads the list, so a contact opted out here is skipped by every
campaign, onboarding and reply from then on. ``handle_reply``'s default rules call these too.
Logs name the contact id only (a phone number or email is customer data).
"""

from __future__ import annotations

import asyncio

from autotalk_prefect._compat import async_dispatch
from autotalk_prefect.ledger.optouts import Identity, OptOutList
from autotalk_prefect.tasks._common import autotalk_task, run_logger

__all__ = ["aopt_in", "aopt_out", "opt_in", "opt_out"]


def _identity(contact_id: str | None, phone: str | None, email: str | None) -> Identity:
    identity = Identity.of(contact_id, phone, email)
    if not identity:
        given = {k: v for k, v in (("phone", phone), ("email", email)) if v}
        raise ValueError(
            "opt_out/opt_in need a contact_id, a phone number (E.164, or national with "
            f"AUTOTALK_PHONE_REGION set) or an email; got nothing readable ({given or 'none'})"
        )
    return identity


def _opt_out(
    contact_id: str | None,
    phone: str | None,
    email: str | None,
    reason: str | None,
    source: str | None,
    ledger_storage: str | None,
) -> bool:
    identity = _identity(contact_id, phone, email)
    added = OptOutList(ledger_storage).add(identity, reason=reason, source=source)
    who = identity.contact_id or "a contact (by phone/email)"
    run_logger().info("Opt-out of %s: %s", who, "recorded" if added else "already on the list")
    return added


def _opt_in(
    contact_id: str | None, phone: str | None, email: str | None, ledger_storage: str | None
) -> int:
    identity = _identity(contact_id, phone, email)
    removed = OptOutList(ledger_storage).remove(identity)
    who = identity.contact_id or "a contact (by phone/email)"
    run_logger().info("Opt-in of %s: %s identifiers removed from the list", who, removed)
    return removed


@autotalk_task("opt-out", "opt_out")
async def aopt_out(
    contact_id: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    ledger_storage: str | None = None,
) -> bool:
    """Put a contact on the opt-out list (by id, phone and/or email); True if it was new."""
    return await asyncio.to_thread(
        _opt_out, contact_id, phone, email, reason, source, ledger_storage
    )


@async_dispatch(aopt_out)
@autotalk_task("opt-out", "opt_out")
def opt_out(
    contact_id: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    ledger_storage: str | None = None,
) -> bool:
    """Put a contact on the opt-out list (by id, phone and/or email); True if it was new."""
    return _opt_out(contact_id, phone, email, reason, source, ledger_storage)


@autotalk_task("opt-in", "opt_in")
async def aopt_in(
    contact_id: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    ledger_storage: str | None = None,
) -> int:
    """Take a contact off the opt-out list (every entry holding any identifier given)."""
    return await asyncio.to_thread(_opt_in, contact_id, phone, email, ledger_storage)


@async_dispatch(aopt_in)
@autotalk_task("opt-in", "opt_in")
def opt_in(
    contact_id: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    ledger_storage: str | None = None,
) -> int:
    """Take a contact off the opt-out list (every entry holding any identifier given)."""
    return _opt_in(contact_id, phone, email, ledger_storage)
