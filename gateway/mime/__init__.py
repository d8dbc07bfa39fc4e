"""MIME analysis of submitted messages: pure functions over the raw bytes.

Owns: limits, structure with byte offsets, header facts, classification, signed
units and documents (`analyze`, `analyze_entity`). Must not: do I/O, read the
clock or verify signatures; rejections are returned as `Rejection` values.
"""

from gateway.mime.analysis import Analysis, EntityAnalysis, analyze, analyze_entity
from gateway.mime.classification import ClassificationSource
from gateway.mime.headers import HeaderField
from gateway.mime.limits import MimeLimits
from gateway.mime.signed import DocumentPart, InlineText, SignedKind, SignedUnit
from gateway.mime.structure import Part, PartPath, format_path
from gateway.mime.verdicts import Rejection

__all__ = [
    "Analysis",
    "ClassificationSource",
    "DocumentPart",
    "EntityAnalysis",
    "HeaderField",
    "InlineText",
    "MimeLimits",
    "Part",
    "PartPath",
    "Rejection",
    "SignedKind",
    "SignedUnit",
    "analyze",
    "analyze_entity",
    "format_path",
]
