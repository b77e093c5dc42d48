"""`flowaudit reid FILE.csv`: a DPO's own file, good and bad."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flowaudit.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No data home: CSV mode must work without one (policy defaults: privacy-by-default)."""
    monkeypatch.setenv("FLOWAUDIT_HOME", str(tmp_path / "no-home"))
    for var in ("FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW"):
        monkeypatch.delenv(var, raising=False)


def _one_clean_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("flowaudit: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def crowd_csv(tmp_path: Path) -> Path:
    rows = [("A1", "25-34", mood) for mood in ["calm", "happy", "sad"] * 4]
    rows += [("B2", "35-44", mood) for mood in ["calm", "happy"] * 6]
    rows += [("C3", "55+", "calm")]  # one person alone: k = 1
    path = tmp_path / "crowd.csv"
    pd.DataFrame(rows, columns=["zone", "age", "mood"]).to_csv(path, index=False)
    return path


def test_csv_report_json(crowd_csv: Path) -> None:
    result = runner.invoke(
        app,
        ["reid", str(crowd_csv), "--qi", "zone, age", "--sensitive", "mood", "--format", "json"],
    )
    assert result.exit_code == 1  # k = 1 misses k_min 10
    figures = json.loads(result.stdout)
    assert (figures["records"], figures["classes"], figures["k"]) == (25, 3, 1)
    assert figures["sample_uniques"] == 1 and figures["prosecutor_risk"] == 1.0
    assert figures["distinct_l"] == 1 and figures["policy"] == "privacy-by-default"
    assert {m["threshold"] for m in figures["missed"]} >= {"k_min", "l_min"}


def test_csv_text_and_threshold_overrides(crowd_csv: Path) -> None:
    args = ["reid", str(crowd_csv), "--qi", "zone", "--sensitive", "mood"]
    failing = runner.invoke(app, args)
    assert failing.exit_code == 1
    assert "MISSED" in failing.output and "verdict: misses k = 1 < k_min 10" in failing.output
    lenient = runner.invoke(
        app, [*args, "--k-min", "1", "--l-min", "1", "--t-max", "1", "--max-risk", "1"]
    )
    assert lenient.exit_code == 0, lenient.output
    assert "verdict: meets every threshold" in lenient.output
    assert "equal-distance EMD" in lenient.output


def test_csv_with_population(crowd_csv: Path, tmp_path: Path) -> None:
    population = tmp_path / "everyone.csv"
    pd.DataFrame({"zone": ["A1"] * 40 + ["B2"] * 30 + ["C3"] * 4}).to_csv(population, index=False)
    base = ["reid", str(crowd_csv), "--qi", "zone", "--sensitive", "", "--format", "json"]
    table = json.loads(runner.invoke(app, [*base, "--population", str(population)]).stdout)
    assert table["journalist_risk"] == pytest.approx(1 / 4) and table["population"] == 74
    size = json.loads(runner.invoke(app, [*base, "--population", "1000"]).stdout)
    assert size["journalist_risk"] == pytest.approx(25 / 1000) and size["population"] == 1000


def test_csv_suggest_finds_a_generalisation(tmp_path: Path) -> None:
    rows = [(f"A{i % 4}", "zz") for i in range(40)]
    path = tmp_path / "zones.csv"
    pd.DataFrame(rows, columns=["zone", "note"]).to_csv(path, index=False)
    result = runner.invoke(
        app,
        [
            "reid",
            str(path),
            "--qi",
            "zone",
            "--sensitive",
            "",
            "--k-min",
            "11",
            "--max-risk",
            "1",
            "--suggest",
        ],
    )
    assert result.exit_code == 1
    assert "suggestion: zone=area" in result.output  # A0..A3 -> area A: one class of 40


def test_csv_defaults_come_from_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "partial.csv"
    pd.DataFrame({"zone": ["A"], "age_band": ["25-34"]}).to_csv(path, index=False)
    _one_clean_error(
        runner.invoke(app, ["reid", str(path)]),
        "has no column 'arrival_bucket'",
        "--qi",
        "columns: zone, age_band",
    )


@pytest.mark.parametrize(
    "content, fragments",
    [
        (b"", ("is empty",)),
        (b"zone,mood\n", ("has a header but no records",)),
        (b"zone,mood\nA,x\nB,y,z,w\n", ("is not a readable CSV file",)),
        (bytes(range(128, 256)) * 4, ("is not a readable CSV file",)),
    ],
)
def test_bad_csv_is_one_line(tmp_path: Path, content: bytes, fragments: tuple[str, ...]) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    _one_clean_error(
        runner.invoke(app, ["reid", str(path), "--qi", "zone", "--sensitive", "mood"]), *fragments
    )


def test_unknown_column_missing_file_and_conflicts(crowd_csv: Path, tmp_path: Path) -> None:
    _one_clean_error(
        runner.invoke(app, ["reid", str(crowd_csv), "--qi", "zone,height", "--sensitive", ""]),
        "quasi-identifier column 'height' is not in the table",
        "columns: zone, age, mood",
    )
    _one_clean_error(
        runner.invoke(app, ["reid", str(crowd_csv), "--qi", "zone", "--sensitive", "salary"]),
        "sensitive attribute column 'salary'",
    )
    _one_clean_error(runner.invoke(app, ["reid", str(tmp_path / "nope.csv")]), "does not exist")
    _one_clean_error(runner.invoke(app, ["reid", str(tmp_path)]), "is a directory")
    _one_clean_error(
        runner.invoke(app, ["reid", str(crowd_csv), "--table", "subjects"]), "not both"
    )
    _one_clean_error(
        runner.invoke(app, ["reid", str(crowd_csv), "--event", "fete"]), "measured whole"
    )
    _one_clean_error(
        runner.invoke(
            app,
            [
                "reid",
                str(crowd_csv),
                "--qi",
                "zone",
                "--sensitive",
                "",
                "--population",
                str(tmp_path / "gone.csv"),
            ],
        ),
        "population file",
        "does not exist",
    )
    _one_clean_error(
        runner.invoke(
            app, ["reid", str(crowd_csv), "--qi", "zone", "--sensitive", "", "--t-max", "3"]
        ),
        "t_max = 3.0 must be between 0 and 1",
    )
