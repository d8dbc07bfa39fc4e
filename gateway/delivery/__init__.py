"""Delivery of accepted copies: local mailboxes now, peer gateways later."""
