"""What a worker's exit code says: a POSIX signal (negative), or a Windows status (0xC0000005...), which Python gives
as a large unsigned number that named nothing ('exit code 3221225477'; a Windows review)."""

from __future__ import annotations

# Windows statuses a crashed engine ends with; those marked True come with a failed allocation as often as not.
_WINDOWS_STATUS = {
    0xC0000005: ("an access violation", False),
    0xC0000017: ("out of memory (STATUS_NO_MEMORY)", True),
    0xC00000FD: ("a stack overflow", False),
    0xC0000409: ("a fail-fast abort, as a C++ library's uncaught error (often an allocation) ends", True),
    0xE06D7363: ("an uncaught C++ exception", True),
}


def exit_words(code) -> tuple[str, bool]:
    """How a worker that ended with ``code`` ended, in words, and whether memory is the likely cause."""
    if isinstance(code, int) and code < 0:
        # 9 is what the out-of-memory killer sends (a sweep); SIGTERM from outside is not memory
        return f"killed by signal {-code}{' (the out-of-memory killer, or kill -9)' if code == -9 else ''}", code == -9
    if isinstance(code, int) and code >= 0x80000000:
        words, memory = _WINDOWS_STATUS.get(code, ("a Windows error status", False))
        return f"exit code 0x{code:08X}: {words}", memory
    return f"exit code {code}", False
