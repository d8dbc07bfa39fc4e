"""Barid's network-facing side: configuration, the store, and the listeners.

Owns: everything `barid serve` runs on its one asyncio loop. Must not: import
`admin` (the admin plane uses the gateway, never the other way round).
"""
