"""Public verification of issued messages (docs/CONTRACT.md §6): by token, by document
bytes, and the published token keys. `service` decides; `gateway.http.app` serves."""

from gateway.verification.service import (
    DocumentVerdict,
    Verdict,
    VerificationService,
    VerificationUnavailable,
)

__all__ = ["DocumentVerdict", "Verdict", "VerificationService", "VerificationUnavailable"]
