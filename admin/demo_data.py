# ruff: noqa: E501  (a data table reads best one row per line)
"""The demo government: agencies and employees used by `barid demo` and the tests.

Owns: these constants only (one source for the demo, the shipped policy's test
table and the policy tests). Must not: touch any store.
"""

from __future__ import annotations

from gateway.store.directory import AgencyInput

PEERS = {"region": ["region.gov.example"]}

AGENCIES = (
    AgencyInput("CAB", "Cabinet Secretariat", "الأمانة العامة لمجلس الوزراء", "entity",
                "cab.gov.example"),
    AgencyInput("MOH", "Ministry of Health", "وزارة الصحة", "ministry", "moh.gov.example"),
    AgencyInput("MOH-PLN", "Planning Directorate", "دائرة التخطيط", "directorate",
                "moh.gov.example", "MOH"),
    AgencyInput("MOF", "Ministry of Finance", "وزارة المالية", "ministry", "mof.gov.example"),
    AgencyInput("MOF-BUD", "Budget Directorate", "دائرة الموازنة", "directorate",
                "mof.gov.example", "MOF"),
    AgencyInput("GOV-BSR", "Basra Governorate", "محافظة البصرة", "governorate",
                "gov-bsr.gov.example"),
)  # fmt: skip

# address, agency, English name, Arabic name, role, clearance, status, S/MIME certificate too
EMPLOYEES = (
    ("director@cab.gov.example", "CAB", "Layla Hassan", "ليلى حسن", "director", "secret", "active", False),
    ("registrar@cab.gov.example", "CAB", "Omar Saleh", "عمر صالح", "registrar", "confidential", "active", False),
    ("clerk@cab.gov.example", "CAB", "Huda Karim", "هدى كريم", "clerk", "internal", "active", False),
    ("minister@moh.gov.example", "MOH", "Karim Abbas", "كريم عباس", "minister", "secret", "active", True),
    ("registrar@moh.gov.example", "MOH", "Maryam Taha", "مريم طه", "registrar", "confidential", "active", False),
    ("clerk@moh.gov.example", "MOH", "Yusuf Adel", "يوسف عادل", "clerk", "internal", "active", False),
    ("former@moh.gov.example", "MOH", "Samir Fadhil", "سمير فاضل", "clerk", "internal", "left", False),
    ("planning.director@moh.gov.example", "MOH-PLN", "Sara Jamil", "سارة جميل", "director", "confidential", "active", False),
    ("planning.clerk@moh.gov.example", "MOH-PLN", "Rami Nabil", "رامي نبيل", "clerk", "public", "active", False),
    ("minister@mof.gov.example", "MOF", "Hadi Nouri", "هادي نوري", "minister", "secret", "active", False),
    ("registrar@mof.gov.example", "MOF", "Dina Sabah", "دينا صباح", "registrar", "confidential", "active", False),
    ("clerk@mof.gov.example", "MOF", "Ahmed Latif", "أحمد لطيف", "clerk", "internal", "active", False),
    ("budget.director@mof.gov.example", "MOF-BUD", "Noor Kadhim", "نور كاظم", "director", "confidential", "active", False),
    ("governor@gov-bsr.gov.example", "GOV-BSR", "Ali Jaber", "علي جابر", "director", "secret", "active", False),
    ("registrar@gov-bsr.gov.example", "GOV-BSR", "Zahra Amin", "زهراء أمين", "registrar", "internal", "active", False),
    ("clerk@gov-bsr.gov.example", "GOV-BSR", "Bilal Qasim", "بلال قاسم", "clerk", "public", "active", False),
)  # fmt: skip
