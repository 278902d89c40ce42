"""PKCE verifiers and challenges, state values and their digests.

RFC 7636 sections 4.1, 4.2 and 7.1; RFC 6749 section 10.10; SECURITY.md P2, P3, B1.
"""

from __future__ import annotations

import base64
import hashlib
import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flow.protocol.pkce import (
    new_state,
    new_verifier,
    s256_challenge,
    same_digest,
    state_digest,
)

#: The unreserved characters of RFC 3986, the only ones a verifier may use.
UNRESERVED = string.ascii_letters + string.digits + "-._~"

valid_verifiers = st.text(alphabet=UNRESERVED, min_size=43, max_size=128)


def _decoded_bits(value: str) -> int:
    """Bits carried by an unpadded base64url value."""
    padding = "=" * (-len(value) % 4)
    return len(base64.urlsafe_b64decode(value + padding)) * 8


def _independent_s256(verifier: str) -> str:
    """RFC 7636 section 4.2 computed here, without flow's helpers."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    encoded = base64.b64encode(digest).decode("ascii")
    return encoded.replace("+", "-").replace("/", "_").rstrip("=")


# Verifier -------------------------------------------------------------------------


def test_verifier_is_43_characters_long() -> None:
    assert len(new_verifier()) == 43


def test_verifier_uses_only_unreserved_characters() -> None:
    for _ in range(200):
        assert set(new_verifier()) - set(UNRESERVED) == set()


def test_verifier_carries_at_least_256_bits() -> None:
    assert _decoded_bits(new_verifier()) >= 256


def test_verifier_comes_from_the_secrets_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("flow.protocol.pkce.secrets.token_bytes", lambda n: b"\xff" * n)

    assert new_verifier() == "_" * 42 + "8"


# State ----------------------------------------------------------------------------


def test_state_carries_at_least_128_bits() -> None:
    assert _decoded_bits(new_state()) >= 128


def test_state_carries_the_recommended_160_bits() -> None:
    assert _decoded_bits(new_state()) >= 160


def test_state_needs_no_percent_encoding() -> None:
    assert set(new_state()) - set(UNRESERVED) == set()


def test_state_comes_from_the_secrets_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flow.protocol.pkce.secrets.token_bytes", lambda n: b"\x00" * n)

    assert new_state() == "A" * 32


# Uniqueness -----------------------------------------------------------------------

FRESH_VALUES = 10**5


def test_fresh_states_never_repeat() -> None:
    states = {new_state() for _ in range(FRESH_VALUES)}

    assert len(states) == FRESH_VALUES


def test_fresh_verifiers_never_repeat() -> None:
    verifiers = {new_verifier() for _ in range(FRESH_VALUES)}

    assert len(verifiers) == FRESH_VALUES


# S256 challenge -------------------------------------------------------------------


def test_challenge_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_challenge_of_a_fresh_verifier_is_43_unreserved_characters() -> None:
    challenge = s256_challenge(new_verifier())

    assert (len(challenge), set(challenge) - set(UNRESERVED)) == (43, set())


@settings(max_examples=200)
@given(verifier=valid_verifiers)
def test_challenge_equals_independent_sha256_base64url(verifier: str) -> None:
    assert s256_challenge(verifier) == _independent_s256(verifier)


@settings(max_examples=200)
@given(verifier=valid_verifiers, data=st.data())
def test_one_character_mutation_changes_the_challenge(
    verifier: str, data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(verifier) - 1))
    replacement = data.draw(st.sampled_from(UNRESERVED))
    assume(replacement != verifier[index])
    mutated = verifier[:index] + replacement + verifier[index + 1 :]

    assert s256_challenge(mutated) != s256_challenge(verifier)


def test_challenge_is_not_the_verifier() -> None:
    verifier = new_verifier()

    assert verifier not in s256_challenge(verifier)


# State digest ---------------------------------------------------------------------


def test_state_digest_is_sha256_hex_of_utf8() -> None:
    state = "zoë-state"

    assert state_digest(state) == hashlib.sha256(state.encode("utf-8")).hexdigest()


def test_state_digest_does_not_contain_the_state() -> None:
    state = new_state()

    assert state not in state_digest(state)


@settings(max_examples=150)
@given(state=st.text())
def test_equal_states_have_matching_digests(state: str) -> None:
    copy = "".join(list(state))

    assert same_digest(state_digest(state), state_digest(copy)) is True


@settings(max_examples=150)
@given(left=st.text(), right=st.text())
def test_different_states_never_have_matching_digests(left: str, right: str) -> None:
    assume(left != right)

    assert same_digest(state_digest(left), state_digest(right)) is False


@settings(max_examples=100)
@given(state=st.text(min_size=1), data=st.data())
def test_one_character_change_in_a_state_breaks_the_match(
    state: str, data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(state) - 1))
    replacement = data.draw(st.characters())
    assume(replacement != state[index])
    changed = state[:index] + replacement + state[index + 1 :]

    assert same_digest(state_digest(changed), state_digest(state)) is False


def test_lone_surrogates_digest_without_error_and_stay_distinct() -> None:
    assert same_digest(state_digest("\ud800"), state_digest("\udc00")) is False


def test_state_that_differs_only_in_case_does_not_match() -> None:
    assert same_digest(state_digest("State"), state_digest("state")) is False
