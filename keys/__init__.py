"""Key material: the gateway's own keys, TLS, password hashes and employee identities.

Owns: creating, storing, loading and inspecting keys and certificates. Must not:
import `gateway` or `admin`, talk to the network, or log secret material.
"""
