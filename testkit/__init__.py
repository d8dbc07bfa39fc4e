"""Test and benchmark support for Barid: free ports, a real PostgreSQL and Dovecot,
an in-process gateway, two federated gateways, PGP/MIME and S/MIME message
builders, headless chromium and the fuzz targets. Used by tests/ and bench/ alike;
never imported by product code and not shipped in the wheel. Fixtures stay in the
tests' conftest.py files; this package holds the code they call.
"""
