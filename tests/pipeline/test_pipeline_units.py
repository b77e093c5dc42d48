"""Units of the pipeline: resampling, features, catalogue formats, synthetic crowd, selector."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from pipeline_helpers import DEMO_EVENT_DIR, SET_START

from pipeline import load_catalogue
from pipeline.artist import ArtistControl, load_artist_control
from pipeline.event import ArtistFiles
from pipeline.features import extract
from pipeline.resample import Resampler
from pipeline.selection import Selector
from pipeline.sentiment import Snapshot
from pipeline.synth import SyntheticCrowd
from retention.errors import InputError


@pytest.mark.parametrize("rate", [8000, 32000, 48000])
def test_resampling_keeps_a_tone_and_is_chunk_invariant(rate: int) -> None:
    t = np.arange(rate * 2) / rate
    tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    whole = Resampler(rate).process(tone)
    chunked = Resampler(rate)
    step = Resampler(rate).input_samples(3 * 480)
    parts = np.concatenate([chunked.process(tone[i : i + step])
                            for i in range(0, tone.size, step)])
    assert whole.size == 32000 and np.allclose(whole, parts, atol=1e-2)
    spectrum = np.abs(np.fft.rfft(whole[4000:20000]))
    assert np.argmax(spectrum) * 16000 / 16000 == pytest.approx(1000, abs=2)
    assert np.sqrt(np.mean(whole[4000:20000] ** 2)) == pytest.approx(8000 / np.sqrt(2), rel=0.02)


def test_features_follow_the_sound() -> None:
    rng = np.random.default_rng(0)
    quiet = (rng.standard_normal((20, 480)) * 100).astype(np.int16)
    loud = (rng.standard_normal((20, 480)) * 5000).astype(np.int16)
    claps = np.zeros((20, 480), np.int16)
    claps[::2, 100:110] = 20000  # a sharp click in every other frame
    pcm = np.stack([quiet, loud, claps])
    mask = np.ones((3, 20), bool)
    voiced = np.zeros((3, 20), bool)
    voiced[1, :5] = True
    f = extract(pcm, mask, voiced)
    assert f.level_dbfs[1] > f.level_dbfs[0] + 30
    assert f.clap_rate[2] == pytest.approx(10 / 0.6) and f.clap_rate[1] == 0
    assert f.voiced_ratio.tolist() == [0.0, 0.25, 0.0]
    assert f.centroid_hz[1] > 3000  # white noise is bright
    mask[0] = False
    gone = extract(pcm, mask, voiced)
    assert np.isnan(gone.level_dbfs[0]) and gone.frames[0] == 0


def test_catalogue_formats_agree(tmp_path: Path) -> None:
    csv_cat = load_catalogue(DEMO_EVENT_DIR / "catalogue.csv")
    assert len(csv_cat) == 320 and csv_cat.recovery.sum() > 20
    rows = list(csv.DictReader((DEMO_EVENT_DIR / "catalogue.csv").read_text().splitlines()))
    (tmp_path / "c.json").write_text(json.dumps({"tracks": rows}))
    toml = "".join(
        "[[tracks]]\n" + "".join(f'{k} = "{v}"\n' for k, v in row.items()) for row in rows[:5]
    )
    (tmp_path / "c.toml").write_text(toml)
    assert load_catalogue(tmp_path / "c.json").tracks == csv_cat.tracks
    assert load_catalogue(tmp_path / "c.toml").tracks == csv_cat.tracks[:5]
    rows[2]["energy"] = "1.7"
    (tmp_path / "bad.json").write_text(json.dumps(rows))
    with pytest.raises(InputError, match=r"bad.json': row 3, energy = '1.7' is outside 0..1"):
        load_catalogue(tmp_path / "bad.json")


def test_artist_files_name_the_bad_line(tmp_path: Path) -> None:
    catalogue = load_catalogue(DEMO_EVENT_DIR / "catalogue.csv")
    veto = tmp_path / "veto.txt"
    veto.write_text("T0001\n# fine\nT9999\n")
    with pytest.raises(InputError, match=r"veto.txt', line 3: no track 'T9999'"):
        load_artist_control(ArtistFiles(veto=veto), catalogue, "partial")
    veto.write_text("artist: Nobody Known\n")
    with pytest.raises(InputError, match="no artist 'Nobody Known'"):
        load_artist_control(ArtistFiles(veto=veto), catalogue, "partial")
    veto.write_text("".join(f"artist: {name}\n" for name in sorted(set(catalogue.artists()))))
    with pytest.raises(InputError, match="vetoes every track of the catalogue"):
        load_artist_control(ArtistFiles(veto=veto), catalogue, "partial")


def test_every_track_vetoed_sets_the_vetoes_aside_and_says_so() -> None:
    """Vetoes from the file and the console together can cover the catalogue: a pick is still
    made, from the whole catalogue as if nothing were vetoed, and its record says why."""
    catalogue = load_catalogue(DEMO_EVENT_DIR / "catalogue.csv")
    everything = np.ones(len(catalogue), bool)
    vetoed = Selector(catalogue, ArtistControl("partial", vetoed=everything), 40.0)
    free = Selector(catalogue, ArtistControl("none"), 40.0)
    for crowd in (70.0, 25.0):
        choice = vetoed.decide(SET_START, _snapshot(crowd))
        plain = free.decide(SET_START, _snapshot(crowd))
        assert choice.track_id == plain.track_id
        assert choice.inputs["every_track_vetoed"] is True and choice.inputs["candidates"] > 0
        assert choice.explanation.endswith("the vetoes were set aside for this pick")
        assert "every_track_vetoed" not in plain.inputs
        assert "vetoes were set aside" not in plain.explanation


def test_the_synthetic_crowd_is_seeded() -> None:
    def first(seed: int) -> np.ndarray:
        crowd = SyntheticCrowd(["a", "b"], ["front", "bar"], event_starts=SET_START,
                               event_ends=SET_START + timedelta(minutes=10), seed=seed)
        return next(crowd.windows(SET_START, 100, 1)).pcm

    assert np.array_equal(first(1), first(1)) and not np.array_equal(first(1), first(2))
    crowd = SyntheticCrowd(["a"], ["front"], event_starts=SET_START,
                           event_ends=SET_START + timedelta(minutes=10))
    assert crowd.phase_at(SET_START - timedelta(seconds=1)) == "before"
    assert crowd.phase_at(SET_START + timedelta(minutes=6)) == "dip"
    assert crowd.phase_at(SET_START + timedelta(minutes=11)) == "after"


def _snapshot(crowd: float, trend: float = 0.0) -> Snapshot:
    return Snapshot(crowd=crowd, crowd_raw=crowd, trend_per_min=trend, zones={"front": crowd},
                    zone_raw={"front": crowd}, zone_counts={"front": 10}, active=10)


def test_selector_rules() -> None:
    catalogue = load_catalogue(DEMO_EVENT_DIR / "catalogue.csv")
    n = len(catalogue)
    veto = np.zeros(n, bool)
    pool = np.zeros(n, bool)
    pool[:3] = True
    veto[1] = True
    selector = Selector(catalogue, ArtistControl("partial", vetoed=veto, pinned=pool), 40.0)
    picks = [selector.decide(SET_START, _snapshot(70)).track_id for _ in range(3)]
    assert set(picks[:2]) == {catalogue.tracks[0].id, catalogue.tracks[2].id}
    third = selector.decide(SET_START, _snapshot(70))
    assert third.inputs["pinned_pool"] == "exhausted" and third.track_id != catalogue.tracks[1].id

    low = Selector(catalogue, ArtistControl("none"), 40.0).decide(SET_START, _snapshot(25))
    track = catalogue.tracks[catalogue.index_of(low.track_id)]
    assert low.adaptive_flow and track.recovery
    assert low.parameters["targets"] == {"energy": 0.7, "valence": 0.9}


def test_requests_steer_the_pick_and_are_counted_not_kept() -> None:
    catalogue = load_catalogue(DEMO_EVENT_DIR / "catalogue.csv")
    plain = Selector(catalogue, ArtistControl("none"), 40.0)
    asked = Selector(catalogue, ArtistControl("none"), 40.0)
    target = plain.decide(SET_START, _snapshot(70)).inputs["alternatives"][0]["track"]
    title = catalogue.tracks[catalogue.index_of(target)].title
    assert asked.add_request(f"please play {title.upper()} for my friend, call 0612345678")
    choice = asked.decide(SET_START, _snapshot(70))
    assert choice.track_id == target and choice.inputs["requests_for_track"] == 1
    assert "0612345678" not in json.dumps(choice.inputs) + choice.explanation
