"""What this machine's CPU does natively, read once: whether it multiplies bfloat16 (AVX512-BF16
or AMX), which decides where the query plan and the E5 teacher run in bfloat16. Without those
instructions oneDNN emulates bfloat16, and the product is several times slower than in float32."""

from __future__ import annotations

import functools

BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # x86 flags of bfloat16 dot-product instructions


@functools.cache
def native_bfloat16() -> bool:
    """True where /proc/cpuinfo shows bfloat16 dot-product instructions (False if unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return any(BF16_FLAGS & set(line.split()) for line in f if line.startswith("flags"))
    except OSError:
        return False
