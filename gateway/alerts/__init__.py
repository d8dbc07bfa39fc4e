"""Alerts for security teams: the kinds of alert, the rules over the audit and
access trail, and raising an alert (audit event, metric, optional webhook).

Parts: kinds (the one table of alert kinds by audit action), rules (pure rule
logic), raising (writing a fired alert once), webhook (the optional POST),
evaluator (the periodic scan over new audit events, from a durable position),
mail and mailer (the DKIM-signed message filed into the security mailbox),
progress (progress lines of long runs).
"""
