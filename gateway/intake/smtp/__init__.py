"""SMTP listeners on Barid's own asyncio loop (aiosmtpd underneath).

Owns: protocol mechanics — TLS (STARTTLS and implicit), AUTH against the
directory, connection limits, reading DATA. Must not: judge messages; the
submission handler (gateway/intake) decides and words every reply.
"""
