"""The HTTP listener: the ASGI application, its fair connection slots, client
autoconfiguration and the DNS records an agency domain needs.
"""
