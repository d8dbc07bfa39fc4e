"""What the submission checks work on: the gathered inputs and the facts found so far.

Owns: `Inputs` (what the pipeline fetches before the checks run: values, no I/O)
and `SubmissionFacts` (the inputs plus what earlier checks found: the MIME
analysis, the signed documents and the employee codes their signatures name).
Must not: hold behaviour; checks live in gateway.checks.submission.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.mime.analysis import Analysis
from gateway.mime.limits import MimeLimits
from gateway.model.message import Document, PolicyAuditHit
from gateway.store.directory import SigningMaterial
from keys.signatures import OpenPgpBackend
from policies.directory import AgencyRecord, DirectorySnapshot, EmployeeRecord
from policies.engine import Policy


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the pipeline gathers before the checks run (all values, no I/O)."""

    raw: bytes
    sender: EmployeeRecord
    agency: AgencyRecord
    material: SigningMaterial
    recipients: tuple[str, ...]
    snapshot: DirectorySnapshot
    policy: Policy
    federation: Mapping[str, Sequence[str]]
    limits: MimeLimits
    now: dt.datetime
    sent_last_hour: int
    client_address: str = ""
    openpgp_backend: OpenPgpBackend = "sequoia"
    mailservers: Mapping[str, str] = field(default_factory=dict)  # agency code -> server


@dataclass
class SubmissionFacts:
    """One message under check: the inputs, and the facts each check provides in turn
    (None until the check that provides it has passed)."""

    inputs: Inputs
    analysis: Analysis | None = None
    documents: list[Document] | None = None
    codes: set[str] | None = None  # employee codes named by the good signatures
    # audit-mode policy matches found so far, kept whether the message passes or not
    audit_hits: list[PolicyAuditHit] = field(default_factory=list)
