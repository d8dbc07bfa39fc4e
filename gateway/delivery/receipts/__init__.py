"""Receipts in the sender's Receipts folder: acceptance, delivery, non-delivery
(docs/CONTRACT.md §6).

Owns: building one signed, bilingual receipt from its facts: `facts` (what is
stated, checked), `content` (what the receipt says; worded by the templates),
`build` (the MIME bytes, Message-ID, DKIM). Must not: touch the database, the
network or the clock; finding owed receipts and storing them in the Receipts
mailbox belong to the delivery side.
"""

from gateway.delivery.receipts.build import build_receipt, receipt_message_id
from gateway.delivery.receipts.facts import (
    NON_DELIVERY_REASONS,
    NON_DELIVERY_STATUS,
    ReceiptFacts,
    ReceiptKind,
)

__all__ = [
    "NON_DELIVERY_REASONS",
    "NON_DELIVERY_STATUS",
    "ReceiptFacts",
    "ReceiptKind",
    "build_receipt",
    "receipt_message_id",
]
