"""Intake: where mail enters -- the SMTP listeners, the submission handler and
the end-of-data acceptance, the transfer listener of peer gateways, and login checks.
"""
