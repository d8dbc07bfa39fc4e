"""Official mail submission: from an authenticated SMTP session to a durable,
stamped acceptance (docs/CONTRACT.md §4-6).

Owns: the submission pipeline — limits and structure, header checks, signed
documents, employee codes, classification and policy, stamping, acceptance.
Must not: deliver; accepted copies wait in the delivery queue.
"""
