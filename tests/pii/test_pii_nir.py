"""French NIR: the control key (97 − N mod 97, Corsica 2A → 19, 2B → 18) and the recognizer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.pii.recognizers import FrNirRecognizer, is_valid_nir, nir_key

CASES = [
    # valid
    ("2 95 10 99 126 111 93", True),  # python-stdnum's doctest (born abroad: dept 99)
    ("295109912611193", True),
    ("255081416802538", True),  # betagouv/nir_validate README
    ("2 55 08 14 168 025 38", True),
    ("253072B07300470", True),  # Corsica 2B → 18
    ("253072A07300443", True),  # Corsica 2A → 19
    ("253072a07300443", True),  # lower-case department letter
    ("2.55.08.14.168.025.38", True),
    ("2-55-08-14-168-025-38", True),
    # invalid
    ("295109912611199", False),  # wrong key
    ("255081416802539", False),  # wrong key
    ("253072C07300443", False),  # no department 2C
    ("253072B07300443", False),  # 2A's key on a 2B number
    ("25508141680253", False),  # 14 characters
    ("2550814168025380", False),  # 16 characters
    ("955081416802538", False),  # sex digit 9 does not exist
    ("", False),
    ("2 55 08 14 168 025 3X", False),
]


@pytest.mark.parametrize("value, valid", CASES, ids=[c[0] or "empty" for c in CASES])
def test_is_valid_nir(value: str, valid: bool) -> None:
    assert is_valid_nir(value) is valid


def test_corsica_replacement_matches_the_published_keys() -> None:
    assert nir_key("253072B073004") == 70
    assert nir_key("253072A073004") == 43
    assert nir_key("2530718073004") == 70  # 2B is read as 18
    assert nir_key("2530719073004") == 43  # 2A is read as 19


def test_nir_key_rejects_a_malformed_body() -> None:
    with pytest.raises(ValueError):
        nir_key("12345")


@given(
    sex=st.sampled_from("12"),
    digits=st.text("0123456789", min_size=4, max_size=4),
    dept=st.one_of(st.text("0123456789", min_size=2, max_size=2), st.sampled_from(["2A", "2B"])),
    rest=st.text("0123456789", min_size=6, max_size=6),
)
def test_the_computed_key_validates_and_any_other_key_does_not(
    sex: str, digits: str, dept: str, rest: str
) -> None:
    body = sex + digits + dept + rest
    key = nir_key(body)
    assert 1 <= key <= 97
    assert is_valid_nir(f"{body}{key:02d}")
    assert not is_valid_nir(f"{body}{(key % 97) + 1:02d}")


TEXT_CASES = [
    ("Mon numéro de sécu : 2 55 08 14 168 025 38 merci", "2 55 08 14 168 025 38"),  # valid
    ("NIR 253072B07300470.", "253072B07300470"),  # valid
    ("My number is 295109912611193", "295109912611193"),  # valid
    ("commande 295109912611199", None),  # invalid: wrong key
    ("ticket 1234567890123456789", None),  # invalid: too long, no NIR inside
]


@pytest.mark.parametrize("text, expected", TEXT_CASES)
def test_recognizer_finds_only_valid_nirs(text: str, expected: str | None) -> None:
    recognizer = FrNirRecognizer(supported_language="fr")
    results = recognizer.analyze(text, ["FR_NIR"])
    found = [text[r.start : r.end] for r in results if r.score > 0.5]
    assert found == ([expected] if expected else [])
