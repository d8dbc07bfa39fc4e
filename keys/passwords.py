"""Employee password hashes (Argon2id, PHC string format) and new-password rules.

Owns: hashing, verification with equal timing for unknown users, rehash decisions
and rejecting obviously weak new passwords. Must not: store hashes, rate-limit or
log passwords; callers keep the hash and count failures.
"""

from __future__ import annotations

import enum
import functools
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # bounds hashing work for a single attempt

_OBVIOUS = frozenset(
    {
        "password123",
        "password1234",
        "passw0rd123",
        "1234567890",
        "12345678910",
        "0123456789",
        "qwertyuiop",
        "qwerty12345",
        "1q2w3e4r5t",
        "abcdefghij",
        "iloveyou123",
        "letmein123",
        "welcome123",
        "changeme123",
        "admin12345",
    }
)


class PasswordHasherProfile(enum.Enum):
    """Argon2id cost settings: (time_cost, memory_cost in KiB, parallelism).

    All profiles: Argon2id v1.3, 16-byte salt, 32-byte tag, PHC string format.
    - DEFAULT: RFC 9106 §4 second recommended option (low memory): t=3, m=64 MiB,
      p=4; about 0.1 s per hash on a current server core. Use for every real account.
    - BULK: t=2, m=19 MiB, p=1, the OWASP minimum for Argon2id; for directory imports.
    - TEST: t=1, m=1 MiB, p=1; for test suites only, never for real accounts.
    Hashes made with a cheaper profile verify normally and `needs_rehash` reports
    them, so the caller re-hashes with DEFAULT at the employee's next successful login.
    """

    DEFAULT = (3, 64 * 1024, 4)
    BULK = (2, 19 * 1024, 1)
    TEST = (1, 1024, 1)


class PasswordHashError(ValueError):
    """A stored value is not an Argon2 hash: the account record is damaged."""


class WeakPasswordError(ValueError):
    """A new password is refused; the message says why and what to do."""


@functools.cache
def _hasher(profile: PasswordHasherProfile) -> PasswordHasher:
    time_cost, memory_cost, parallelism = profile.value
    return PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


@functools.cache
def _dummy_hash(profile: PasswordHasherProfile) -> str:
    # A hash of a random secret nobody knows, made once per process.
    return _hasher(profile).hash(secrets.token_urlsafe(24))


def hash_password(
    password: str, profile: PasswordHasherProfile = PasswordHasherProfile.DEFAULT
) -> str:
    """The Argon2id PHC string for `password`, e.g. `$argon2id$v=19$m=65536,t=3,p=4$...`."""
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password longer than {MAX_PASSWORD_LENGTH} characters")
    return _hasher(profile).hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches `password_hash` (whatever profile made it).

    Raises PasswordHashError when `password_hash` is not an Argon2 hash at all.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher(PasswordHasherProfile.DEFAULT).verify(password_hash, password)
    except InvalidHashError:
        raise PasswordHashError("stored password hash is not a valid Argon2 hash") from None
    except VerificationError:
        return False


def verify_or_dummy(
    password_hash: str | None,
    password: str,
    profile: PasswordHasherProfile = PasswordHasherProfile.DEFAULT,
) -> bool:
    """Like `verify_password`, but an unknown user (`None`) costs the same time.

    For `None` it verifies against a fixed dummy hash made with `profile` (the
    profile real hashes use) and returns False, so "no such user" and "wrong
    password" cannot be told apart by timing.
    """
    if password_hash is None or len(password) > MAX_PASSWORD_LENGTH:
        # Unknown user, or a password no hash can match: spend the same time.
        verify_password(_dummy_hash(profile), password[:MAX_PASSWORD_LENGTH])
        return False
    return verify_password(password_hash, password)


def needs_rehash(
    password_hash: str, profile: PasswordHasherProfile = PasswordHasherProfile.DEFAULT
) -> bool:
    """True when the hash was made with other parameters than `profile`'s."""
    try:
        return _hasher(profile).check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        raise PasswordHashError("stored password hash is not a valid Argon2 hash") from None


def check_new_password(password: str, *, address: str | None = None) -> None:
    """Refuse an obviously weak new password with a WeakPasswordError saying why.

    Rules: at least 10 and at most 1024 characters; not one repeated character; not
    a well-known weak password; not the mail address or its local part.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"password too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password too long: use at most {MAX_PASSWORD_LENGTH} characters")
    if len(set(password)) == 1:
        raise WeakPasswordError("password is one repeated character: choose another")
    lowered = password.strip().lower()
    if lowered in _OBVIOUS:
        raise WeakPasswordError("password is a well-known weak password: choose another")
    if address:
        address = address.strip().lower()
        local = address.partition("@")[0]
        if lowered in (address, local):
            raise WeakPasswordError("password must not be the mail address: choose another")
