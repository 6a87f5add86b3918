"""Password hashing (argon2id, the argon2-cffi defaults) and the password rule.

A hash records its own parameters, so a stronger default later re-hashes on the next login
(:func:`needs_rehash`). Verifying an unknown user's password still costs one hash
(:data:`DUMMY_HASH`), so the answer time does not tell which user names exist. The web server
checks passwords on :func:`hashing_executor`'s threads only.
"""

from __future__ import annotations

import base64
import hmac
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION, Type, core, ffi

MIN_LENGTH = 10
MAX_LENGTH = 256
_HASHER = PasswordHasher()
DUMMY_HASH = _HASHER.hash("not a password of anyone: equalises timing")
# argon2.h: the success code and the default flags of an argon2_context.
ARGON2_OK = 0
ARGON2_DEFAULT_FLAGS = 0
# The scheduling priority of the login threads (Linux nice, 19 = the lowest).
HASH_NICE = 19


def _lower_priority() -> None:
    """Run this thread (and the threads argon2 starts from it, which inherit its nice value) at
    the lowest CPU priority: on a small server a stream of hashes then only takes CPU time the
    switch and the controller's call path leave unused (issue 11 item 1; P1)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICE)
    except (AttributeError, OSError):  # not Linux: the thread keeps its priority
        pass


def hashing_executor(threads: int = 1) -> ThreadPoolExecutor:
    """Threads of their own for password checks (64 MiB and ~0.1 s of CPU each), apart from the
    default executor the IVR's look-ups and the database use, at the lowest CPU priority."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hotline-login", initializer=_lower_priority)


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
    """Whether ``password`` is the one ``stored_hash`` was made from. The hash is computed on the
    calling thread alone (:func:`_argon2_one_thread`), not on one thread per lane."""
    try:
        raw = _argon2_one_thread(stored_hash, password)
    except (InvalidHashError, ValueError):
        return False
    if raw is None:  # not a form computed here: the library's own check
        try:
            return _HASHER.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    return raw


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _argon2_one_thread(stored_hash: str, password: str) -> bool | None:
    """Check an argon2 hash as the library would, but with ``threads = 1``: the result is the
    same for any thread count (the lanes are kept), and a check then uses one core, not four.
    On a two-core server a stream of checks (a login flood) would otherwise take both cores, and
    their 64 MiB each from the caches, from the switch and the call path (issue 11 item 1; P1).
    None: the hash is not in the encoded form this reads (the caller falls back)."""
    params = extract_parameters(stored_hash)
    parts = stored_hash.split("$")
    if len(parts) != 6 or params.version != ARGON2_VERSION or params.type not in (Type.ID, Type.I, Type.D):
        return None
    salt, expected = _b64(parts[4]), _b64(parts[5])
    if len(salt) != params.salt_len or len(expected) != params.hash_len:
        return None
    secret = password.encode("utf-8")
    out = ffi.new("uint8_t[]", len(expected))
    pwd = ffi.new("uint8_t[]", secret)
    salt_buf = ffi.new("uint8_t[]", salt)
    ctx = ffi.new(
        "argon2_context *",
        {
            "out": out,
            "outlen": len(expected),
            "pwd": pwd,
            "pwdlen": len(secret),
            "salt": salt_buf,
            "saltlen": len(salt),
            "secret": ffi.NULL,
            "secretlen": 0,
            "ad": ffi.NULL,
            "adlen": 0,
            "t_cost": params.time_cost,
            "m_cost": params.memory_cost,
            "lanes": params.parallelism,
            "threads": 1,
            "version": params.version,
            "allocate_cbk": ffi.NULL,
            "free_cbk": ffi.NULL,
            "flags": ARGON2_DEFAULT_FLAGS,
        },
    )
    if core(ctx, params.type.value) != ARGON2_OK:
        return False
    return hmac.compare_digest(bytes(ffi.buffer(out, len(expected))), expected)


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True
