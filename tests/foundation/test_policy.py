"""Policies: every shipped profile validates; bad files fail with the key and the fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retention.errors import NotFoundError, PolicyError
from retention.ground.durations import format_duration, parse_duration
from retention.policy import list_policies, load_policy, policy_diff

SHIPPED = ["apple-music-2025", "privacy-by-default", "spotify-2026", "tiktok-2026"]


def test_every_shipped_policy_loads() -> None:
    assert list_policies() == SHIPPED
    for name in SHIPPED:
        policy = load_policy(name)
        assert policy.name == name
        assert len(policy.sha256) == 64


@pytest.mark.parametrize(
    "name, raw, metadata, control",
    [
        ("spotify-2026", timedelta(hours=72), None, "none"),
        ("apple-music-2025", timedelta(hours=24), timedelta(days=365), "partial"),
        ("tiktok-2026", timedelta(0), timedelta(days=7), "full"),
        ("privacy-by-default", timedelta(0), timedelta(days=30), "full"),
    ],
)
def test_profiles_carry_the_article_numbers(
    name: str, raw: timedelta, metadata: timedelta | None, control: str
) -> None:
    policy = load_policy(name)
    assert policy.retention.raw_audio == raw
    assert policy.retention.metadata == metadata
    assert policy.selection.artist_control == control


VALID = """
[policy]
name = "t"
controller = "c"
purposes = ["p"]
"""


# fmt: off
@pytest.mark.parametrize("extra, message", [
    ('[retention]\nraw_audio = "72"', 'retention.raw_audio = \'72\': "72" has no unit; write "72h"'),  # invalid
    ('[retention]\nmetadata = "forever"', "retention.metadata"),                                    # invalid
    ('[capture]\nvad_aggressiveness = 5', "must be between 0 and 3"),                               # invalid
    ('[capture]\nstore_speech = "no"', "expected true or false"),                                   # invalid
    ('[selection]\nartist_control = "some"', "one of none, partial, full"),                         # invalid
    ('[capture]\nunknown = 1', "unknown key capture.unknown"),                                      # invalid
    ('[nonsense]\nx = 1', "unknown section [nonsense]"),                                            # invalid
    ('[capture]\nbiometrics = true', "art9_exception"),                                             # impossible
    ('[capture]\nrequire_consent = false', "require_consent = true"),                               # impossible
    ('[retention]\nmetadata = "1d"\nanonymise_metadata_after = "3d"', "later than"),                # impossible
    ('[reid]\nsensitive = ["zone"]', "also a quasi-identifier"),                                    # impossible
])
# fmt: on
def test_invalid_policies_name_file_key_and_fix(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(VALID + extra + "\n")
    with pytest.raises(PolicyError) as excinfo:
        load_policy(path)
    text = str(excinfo.value)
    assert str(path) in text
    assert message in text


def test_missing_required_key_and_broken_toml(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[policy]\nname = "x"\n')
    with pytest.raises(PolicyError, match="policy.controller is required"):
        load_policy(path)
    path.write_text("[policy\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(path)


def test_unknown_policy_name_lists_the_shipped_ones() -> None:
    with pytest.raises(NotFoundError, match="privacy-by-default"):
        load_policy("no-such-policy")


def test_diff_reports_only_differences() -> None:
    rows = dict((k, (a, b)) for k, a, b in policy_diff(load_policy("spotify-2026"),
                                                         load_policy("tiktok-2026")))
    assert rows["retention.raw_audio"] == ("72h", "0h")
    assert rows["retention.metadata"] == ("indefinite", "7d")
    assert "reid.k_min" not in rows


@given(st.text())
def test_duration_parser_never_crashes(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert value is None or value >= timedelta(0)


@given(st.integers(0, 10**7), st.sampled_from("smhdw"))
def test_duration_round_trip(amount: int, unit: str) -> None:
    value = parse_duration(f"{amount}{unit}")
    assert parse_duration(format_duration(value)) == value
