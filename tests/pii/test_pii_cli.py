"""`flowaudit pii-scan` through the real CLI: files, the store, output, exit codes, bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowaudit.cli import app
from flowaudit.config import Settings
from flowaudit.runtime import open_runtime
from retention.policy import load_policy

NOW = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)
CSV = (
    "id,text,phone\n"
    '1,"Joue Daft Punk pour Marie Dupont svp",0612345678\n'
    "2,Encore Get Lucky !!!,\n"
    '3,"mail: marie.dupont@orange.fr",\n'
)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["pii-scan", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "export.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


def test_csv_findings_one_line_each_and_exit_1(csv_file: Path) -> None:
    code, out, err = run(str(csv_file))
    assert code == 1, err
    lines = out.strip().splitlines()
    assert lines[:3] == [
        "row 1  field phone  PHONE_NUMBER  score 0.95  chars 0-10",  # column name as context
        "row 1  field text  PERSON  score 0.85  chars 20-32",
        "row 3  field text  EMAIL_ADDRESS  score 1.00  chars 6-28",
    ]
    assert lines[3].startswith("3 finding(s) in ")
    for secret in ("Marie", "0612345678", "orange.fr"):
        assert secret not in out


def test_show_prints_the_matched_text(csv_file: Path) -> None:
    code, out, _ = run(str(csv_file), "--show")
    assert code == 1
    assert "'Marie Dupont'" in out and "'marie.dupont@orange.fr'" in out


def test_json_output(csv_file: Path) -> None:
    code, out, _ = run(str(csv_file), "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data["rows_scanned"] == 3
    assert data["counts"] == {"EMAIL_ADDRESS": 1, "PERSON": 1, "PHONE_NUMBER": 1}
    assert [(f["row"], f["field"], f["entity_type"]) for f in data["findings"]] == [
        (1, "phone", "PHONE_NUMBER"),
        (1, "text", "PERSON"),
        (3, "text", "EMAIL_ADDRESS"),
    ]
    assert all("text" not in f for f in data["findings"])
    shown = json.loads(run(str(csv_file), "--format", "json", "--show")[1])
    assert shown["findings"][1]["text"] == "Marie Dupont"


def test_field_and_entity_options(csv_file: Path) -> None:
    code, out, _ = run(str(csv_file), "--field", "phone")
    assert code == 1 and out.count("PHONE_NUMBER") == 2  # the finding and the summary
    assert "PERSON" not in out
    code, out, _ = run(str(csv_file), "--entity", "EMAIL_ADDRESS")
    assert code == 1 and "PERSON" not in out and "EMAIL_ADDRESS" in out


def test_a_clean_file_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text('{"text": "Encore Get Lucky"}\n\n{"text": "Joue Daft Punk"}\n')
    code, out, _ = run(str(path))
    assert code == 0
    assert out.strip() == f"no personal data found in 2 text(s) in 2 row(s) of {path}"


def test_jsonl_rows_are_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "notes.ndjson"
    path.write_text('{"text": "ok"}\n\n{"note": {"body": "rappelle Paul Martin au 06 12 34 56 78"}}\n')
    code, out, _ = run(str(path), "--format", "json")
    assert code == 1
    found = {(f["row"], f["field"], f["entity_type"]) for f in json.loads(out)["findings"]}
    assert found == {(3, "note.body", "PERSON"), (3, "note.body", "PHONE_NUMBER")}


def test_allow_list_file(tmp_path: Path) -> None:
    data = tmp_path / "r.jsonl"
    data.write_text('{"text": "Dédicace à Jean-Michel Jarre"}\n')
    allow = tmp_path / "allow.txt"
    allow.write_text("# our headliners\nJean-Michel Jarre\n")
    assert run(str(data))[0] == 1
    assert run(str(data), "--allow-list", str(allow))[0] == 0


BAD_FILES = [
    ("missing.csv", None, "does not exist"),
    ("data.txt", "a,b\n", "unsupported file type '.txt'"),
    ("bad.jsonl", '{"text": "a"}\n{oops\n', "line 2 is not valid JSON"),
    ("list.jsonl", '["a", "b"]\n', "line 1 is a JSON list, not an object"),
    ("empty.csv", "", "is empty; a CSV file needs a header row"),
    ("wide.csv", "a,b\n1,2,3\n", "row 1 (line 2) has more fields than the header's 2"),
    ("quote.csv", 'a,b\n"x"y,2\n', "line 2 is not valid CSV"),
    ("latin1.csv", "text\nécoute\n".encode("latin-1"), "is not UTF-8 text"),
    ("dup.csv", "a,a\n1,2\n", "empty or repeated column names"),
]


@pytest.mark.parametrize("name, content, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_give_one_clear_line(
    tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, out, err = run(str(path))
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("flowaudit: error: ")
    assert message in err
    assert "Traceback" not in err


def test_bad_options(csv_file: Path) -> None:
    code, _, err = run(str(csv_file), "--field", "nope")
    assert code == 1 and "has no field 'nope'; its fields are: id, text, phone" in err
    code, _, err = run(str(csv_file), "--language", "de")
    assert code == 1 and "--language 'de' is not supported" in err
    code, _, err = run(str(csv_file), "--kind", "note")
    assert code == 1 and "apply to the store" in err
    code, _, err = run(str(csv_file), "--threshold", "2")
    assert code == 1 and "between 0 and 1" in err
    code, _, err = run(str(csv_file), "--entity", "SSN")
    assert code == 1 and "unknown PII entity 'SSN'" in err
    code, _, err = run(str(csv_file), "--format", "xml")
    assert code == 2


def _store_with_requests(home: Settings) -> dict[str, str]:
    runtime = open_runtime(home, NOW)
    policy = load_policy("privacy-by-default")
    start = NOW - timedelta(hours=2)
    ids: dict[str, str] = {}
    try:
        with runtime.store.transaction(start, actor="test") as tx:
            tx.register_event(
                "fete", name="Fête", starts_at=start, ends_at=NOW + timedelta(hours=2),
                policy_name=policy.name, policy_sha256=policy.sha256,
            )
            for key, kind, payload in [
                ("pii", "track_request", {"text": "Call Sarah Johnson on +44 20 7946 0958"}),
                ("clean", "track_request", {"text": "Play Get Lucky"}),
                ("note", "note", {"text": "IBAN FR76 3000 6000 0112 3456 7890 189"}),
                ("score", "window_score", {"label": "mail me: bob@gmail.com"}),
            ]:
                ids[key] = tx.put_metadata(
                    event_id="fete", pseudonym=None, kind=kind, start_at=start,
                    payload=payload, retention=timedelta(days=30),
                )
    finally:
        runtime.close()
    return ids


def test_store_scan(sqlite_home: Settings) -> None:
    ids = _store_with_requests(sqlite_home)
    home = ["--home", str(sqlite_home.home), "--now", NOW.isoformat()]
    code, out, err = run(*home, "--format", "json")
    assert code == 1, err
    data = json.loads(out)
    assert data["source"] == "store" and data["records_scanned"] == 3
    found = {(f["row"], f["field"], f["entity_type"]) for f in data["findings"]}
    assert found == {
        (ids["pii"], "track_request.text", "PERSON"),
        (ids["pii"], "track_request.text", "PHONE_NUMBER"),
        (ids["note"], "note.text", "IBAN_CODE"),
    }
    # narrower and wider selections
    data = json.loads(run(*home, "--format", "json", "--kind", "note")[1])
    assert data["counts"] == {"IBAN_CODE": 1}
    data = json.loads(run(*home, "--format", "json", "--all-kinds")[1])
    assert data["records_scanned"] == 4 and data["counts"]["EMAIL_ADDRESS"] == 1
    code, out, _ = run(*home, "--kind", "track_request", "--entity", "IBAN_CODE")
    assert code == 0 and out.startswith("no personal data found in 2 text(s) in 2 stored record")
    text = run(*home)[1]
    assert "Sarah" not in text and "7946" not in text


def test_store_scan_of_an_uninitialised_home_fails_cleanly(tmp_path: Path) -> None:
    code, out, err = run("--home", str(tmp_path / "nowhere"))
    assert code != 0 and out == ""
    assert err.startswith("flowaudit: error: ") and "Traceback" not in err
