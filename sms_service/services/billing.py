"""Billing hooks called by the sending pipeline (R-BILL).

Placeholder interface: the billing issue replaces the bodies with the segment
counter, prices, holds and the ledger. Signatures are the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..models import App, Message
from ..phone import PhoneNumber


@dataclass(frozen=True)
class Quote:
    length: int
    segments: int
    unit_price: Decimal
    amount: Decimal


def quote(*, app: App, phone: PhoneNumber, channel: str, text: str) -> Quote:
    """Price a final text. Raises MessageTooLongError over 400 characters."""
    from ..exceptions import MessageTooLongError

    length = len(text)
    if length > 400:
        raise MessageTooLongError()
    segments = 1 if length <= 70 else -(-length // 67)
    return Quote(length=length, segments=segments, unit_price=Decimal(0), amount=Decimal(0))


def hold(*, message: Message) -> None:
    """Take ``message.cost`` from the app's balance; called inside the transaction
    that creates the message. Raises InsufficientBalanceError (160) or
    AppThresholdExceededError (154)."""


def on_status_change(*, message: Message, old_status: str, new_status: str) -> None:
    """Settle the hold when a message reaches a status that decides the bill."""
