"""schemathesis against the gateway's merged /openapi.json on the running platform: no 5xx and no
answer that violates its documented schema. Bounded (few examples per operation, a time budget)."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from e2e_support import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
BUDGET_SECONDS = int(os.environ.get("GUANXI_SCHEMATHESIS_SECONDS", "30"))


async def test_no_server_errors_and_no_schema_violations(e2e_platform: Platform) -> None:
    p = e2e_platform
    # One worker: with two, hypothesis describes strategies (ast.parse) from two threads at once and
    # CPython 3.11.7 can raise "SystemError: AST constructor recursion depth mismatch" (cpython#106905).
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{p.gateway.url}/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--mode", "positive", "--max-examples", "4", "--seed", "20261123", "--no-shrink",
        "--max-time", str(BUDGET_SECONDS), "--workers", "1", "--request-timeout", "20", "--suppress-health-check", "all",
        "--header", f"Authorization: Bearer {p.token('admin', 'schemathesis')}",
        # Erasing customers or retiring templates at random would only test the fuzzer's luck.
        "--exclude-method", "DELETE",
    ]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=BUDGET_SECONDS + 90)
    except TimeoutError:
        process.kill()  # never leave the fuzzer running behind the test
        await process.wait()
        raise
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-8000:]
