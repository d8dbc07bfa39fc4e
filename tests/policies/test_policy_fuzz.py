"""Fuzzing the policy loader: whatever text a policy file holds, `check_policy`
reports problems (with lines) or compiles a policy that decides without raising
(tests/fuzz_targets.py `policy`). `BARID_FUZZ_EXAMPLES=N` runs it longer."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit.fuzz import examples, policy
from testkit.policy import POLICY_FILE

SEED = POLICY_FILE.read_bytes()
TOKENS = [b"\n", b": ", b"- ", b"  ", b"rules:", b"id: ", b"effect: allow", b"effect: deny",
          b"from:", b"to:", b"agency: ", b"MOH", b"*", b"**", b"'", b'"', b"[", b"]", b"{", b"}",
          b"&a ", b"*a", b"!!python/object ", b"<<: ", b"~", b"null", b"yes", b"0x10", b"1e999",
          b"\t", b"\x00", b"\xff", b"\xd8\xa3", b"%YAML 1.1\n", b"---\n", b"...\n", b"#"]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEED)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["delete", "insert", "token", "line"]))
        if action == "delete":
            del data[at : at + draw(st.integers(1, 60))]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        else:  # duplicate a line elsewhere (repeated keys and rule ids)
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            line = bytes(data[start : end + 1 if end >= 0 else len(data)])
            spot = draw(st.integers(0, len(data)))
            data[spot:spot] = line
    return bytes(data)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_policies_never_raise(text: bytes) -> None:
    policy(text)


@settings(max_examples=examples(100), deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_as_a_policy_never_raise(text: bytes) -> None:
    policy(text)


def test_seed_compiles() -> None:
    policy(SEED)


def test_regression_billion_laughs_alias_is_refused() -> None:
    """YAML aliases could expand exponentially; the strict reader refuses them."""
    laughs = b'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
    laughs += b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    policy(laughs)
