"""Barid's durable store: SQLAlchemy models, engine set-up, migrations, audit chain.

Owns: every table and every transaction boundary. Must not: decide policy or
format replies for clients; callers get values or `StoreError` subclasses.
"""
