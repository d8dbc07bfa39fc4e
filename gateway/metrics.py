"""Prometheus metrics of the gateway, in one place, namespaced `barid_`.

Owns: metric names and their label sets, which are bounded (a reason, a
listener, an outcome; never an address or a registry number). Must not: be
scattered; other modules import the objects defined here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "barid_http_requests_total",
    "HTTP requests served, by route template and status class.",
    ["route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "barid_http_request_seconds",
    "HTTP request latency by route template.",
    ["route"],
    registry=REGISTRY,
)
DIRECTORY_VERSION = Gauge(
    "barid_directory_version",
    "Version counter of the directory snapshot currently loaded.",
    registry=REGISTRY,
)
DIRECTORY_SIZE = Gauge(
    "barid_directory_entries",
    "Entries in the loaded directory snapshot.",
    ["kind"],
    registry=REGISTRY,
)
HEALTH_CHECKS = Counter(
    "barid_health_checks_total",
    "Health checks answered, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
UP = Gauge("barid_up", "1 while `barid serve` runs.", registry=REGISTRY)
AUTH_ATTEMPTS = Counter(
    "barid_login_attempts_total",
    "Password logins (SMTP AUTH, IMAP LOGIN/AUTHENTICATE) by protocol and outcome"
    " (ok, failed, throttled, unavailable).",
    ["protocol", "outcome"],
    registry=REGISTRY,
)
AUTH_LOCKOUTS = Counter(
    "barid_login_lockouts_total",
    "Login limits crossed, by kind (address, account-address, account-slowdown).",
    ["kind"],
    registry=REGISTRY,
)
AUTH_SLOWDOWNS = Counter(
    "barid_login_slowdowns_total",
    "Login attempts delayed because their account fails from everywhere (by protocol).",
    ["protocol"],
    registry=REGISTRY,
)
RECIPIENTS = Counter(
    "barid_smtp_recipients_total",
    "RCPT TO decisions by outcome and rule (built-in rule ids, or policy-rule).",
    ["outcome", "rule"],
    registry=REGISTRY,
)
POLICY_AUDIT_HITS = Counter(
    "barid_policy_audit_hits_total",
    "Audit-mode policy rule matches at submission (one per rule and recipient), by rule id.",
    ["rule"],
    registry=REGISTRY,
)
SUBMISSIONS = Counter(
    "barid_submissions_total",
    "Messages submitted, by outcome (accepted, rejected, deferred) and reason.",
    ["outcome", "reason"],
    registry=REGISTRY,
)
SUBMISSION_SECONDS = Histogram(
    "barid_submission_seconds",
    "Time from end of DATA to the reply, by outcome.",
    ["outcome"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SMTP_SESSIONS = Gauge(
    "barid_smtp_sessions",
    "Open SMTP sessions by listener.",
    ["listener"],
    registry=REGISTRY,
)
IMAP_CONNECTIONS = Gauge(
    "barid_imap_connections",
    "Open IMAP connections by listener (imap, imaps).",
    ["listener"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "barid_deliveries_total",
    "Copies handled by the local delivery worker, by outcome (delivered, failed).",
    ["outcome"],
    registry=REGISTRY,
)
RECEIPTS = Counter(
    "barid_receipts_total",
    "Receipts stored in senders' Receipts folders, by kind.",
    ["kind"],
    registry=REGISTRY,
)
MESSAGE_ACCESSES = Counter(
    "barid_message_accesses_total",
    "Body fetches of official mail recorded in the access trail, by protocol.",
    ["protocol"],
    registry=REGISTRY,
)
DELIVERY_QUEUE_LAG = Gauge(
    "barid_local_delivery_backlog",
    "Local copies waiting in the delivery queue at the worker's last look.",
    registry=REGISTRY,
)
VERIFY_LOOKUPS = Counter(
    "barid_verify_lookups_total",
    "Public verification lookups by kind (token, document) and outcome (valid, revoked,"
    " unknown, forged, match, no-match, throttled).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "barid_queue_depth",
    "Delivery queue entries waiting (queued or held),"
    " by target (local, peer:<name> or imap:<name>).",
    ["target"],
    registry=REGISTRY,
)
QUEUE_OLDEST_SECONDS = Gauge(
    "barid_queue_oldest_seconds",
    "Age in seconds of the oldest waiting (queued or held) delivery queue entry, by target.",
    ["target"],
    registry=REGISTRY,
)

TRANSFERS = Counter(
    "barid_transfers_received_total",
    "Transfers from peer gateways, by outcome (accepted, duplicate, refused, deferred)"
    " and kind or refusal reason (copy, receipt, tls, dkim, policy, ...).",
    ["outcome", "reason"],
    registry=REGISTRY,
)
RELAYS = Counter(
    "barid_relays_total",
    "Copies and receipts sent to peers and agency mail servers, by target kind (peer,"
    " imap, outbox) and outcome (delivered, deferred, failed).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
ALERTS = Counter(
    "barid_alerts_total",
    "Alerts raised (each one an audit event), by kind (gateway.alerts.kinds).",
    ["kind"],
    registry=REGISTRY,
)
ALERT_MAILS = Counter(
    "barid_alert_mails_total",
    "Alerts filed into security mailboxes, by outcome (filed, unrouted: no mailbox"
    " configured or found, failed: tried again at the next scan).",
    ["outcome"],
    registry=REGISTRY,
)
ALERT_WEBHOOKS = Counter(
    "barid_alert_webhooks_total",
    "Alert webhook deliveries, by outcome (delivered, failed).",
    ["outcome"],
    registry=REGISTRY,
)
