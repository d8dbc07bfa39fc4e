"""The admin REST API under `/api/v1/` on the admin listener (DESIGN §10, §12).

Owns: HTTP only -- routes, request and response models, authentication of the
caller into an `Actor`, problem details (RFC 9457), cursor paging. Every route
calls one function of `admin.services`; no use case is implemented here.
"""
