"""Receipts in the sender's Receipts folder: acceptance, delivery, non-delivery (DESIGN.md §6).

Owns: building one signed, bilingual receipt from its facts. Must not: touch the
database, the network or the clock; finding owed receipts and storing them in the
Receipts mailbox belong to the delivery side.
"""

from gateway.receipts.build import (
    NON_DELIVERY_REASONS,
    NON_DELIVERY_STATUS,
    ReceiptFacts,
    ReceiptKind,
    build_receipt,
    receipt_message_id,
)

__all__ = [
    "NON_DELIVERY_REASONS",
    "NON_DELIVERY_STATUS",
    "ReceiptFacts",
    "ReceiptKind",
    "build_receipt",
    "receipt_message_id",
]
