"""Barid's pure rules: the directory's value types, employee codes and routing policy.

Owns: decisions that depend only on their inputs. Must not: touch the network,
the database or the clock (callers pass "now" in); load nothing but policy files.
"""
