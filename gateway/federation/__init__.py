"""Federation: mail transfer between Barid gateways over mutual TLS with DKIM on receipt."""
