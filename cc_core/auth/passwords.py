"""Password hashing (argon2id, the argon2-cffi defaults) and the password rule.

A hash records its own parameters, so a stronger default later re-hashes on the next login
(:func:`needs_rehash`). Verifying an unknown user's password still costs one hash
(:data:`DUMMY_HASH`), so the answer time does not tell which user names exist.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 256
_HASHER = PasswordHasher()
DUMMY_HASH = _HASHER.hash("not a password of anyone: equalises timing")


class PasswordRejected(ValueError):
    """A new password does not meet the rule; the message says why, in Chinese and English."""


def check_rule(password: str, username: str = "") -> None:
    """At least 10 characters, not the user name, and more than one kind of character."""
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"密码至少 {MIN_LENGTH} 个字符 (at least {MIN_LENGTH} characters)")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"密码最多 {MAX_LENGTH} 个字符 (at most {MAX_LENGTH} characters)")
    if username and username.lower() in password.lower():
        raise PasswordRejected("密码不能包含用户名 (the password must not contain the user name)")
    kinds = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if kinds < 2:
        raise PasswordRejected("密码须混合至少两类字符 (mix at least two of: lower, upper, digits, symbols)")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True
