"""`import hanseek` sets OMP_WAIT_POLICY=PASSIVE before any of its modules can load torch (libgomp reads
it once, when loaded), unless the environment already chose a policy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import os, sys; import hanseek.sentiment.transformer; "
    "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
)


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_omp_wait_policy_is_a_default_set_by_the_package(given: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    # A module outside hanseek.encoders that imports torch lazily: the policy is in place before it.
    assert out.stdout.split() == [expected, "False"]
