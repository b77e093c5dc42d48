"""The wheel works: built from the tree, installed in a fresh venv, run away from the checkout.

The wheel is built offline (``--no-build-isolation``: the setuptools of this venv) from a copy
of the project's files, so no ``build/`` folder lands in the shared checkout and no stale copy
of a deleted module can slip in. The fresh venv gets the wheel and nothing else of ours; the
dependencies already installed here are made visible by a ``.pth`` line naming this
interpreter's site-packages. A directory named by a ``.pth`` line is not itself a site
directory, so the editable install's own ``.pth`` hook there never runs: ``flowaudit``,
``retention``, ``pipeline`` and ``audit`` can only come from the wheel, and the first test
proves it by their ``__file__``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flowaudit", "pipeline", "retention", "audit", "migrations", "policies")
SHIPPED = ["apple-music-2025", "privacy-by-default", "spotify-2026", "tiktok-2026"]
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def _project_files() -> list[str]:
    """The files git counts as the project (tracked or new, not ignored) that exist on disk."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
         *PACKAGES, "pyproject.toml", "README.md"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode("utf-8").split("\0")
    return sorted({name for name in listed if name and (ROOT / name).is_file()})


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The wheel built from a copy of the project's files, and those files' names."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    files = _project_files()
    for name in files:
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    result = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", work / "dist", source],
        cwd=work, env={**os.environ, **PIP_ENV},
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (work / "dist").glob("flowaudit-*.whl")
    return wheel, files


@pytest.fixture(scope="module")
def venv(built: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; this interpreter's dependencies visible through a .pth."""
    root = tmp_path_factory.mktemp("venv") / "fresh"
    made = _run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    assert made.returncode == 0, made.stderr
    python = root / "bin" / "python"
    installed = _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "-q", built[0]],
        cwd=root.parent, env={**os.environ, **PIP_ENV},
    )
    assert installed.returncode == 0, installed.stderr
    fresh_site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                      cwd=root.parent).stdout.strip()
    ours = sysconfig.get_paths()
    deps = dict.fromkeys([ours["purelib"], ours["platlib"]])  # one line each, in order
    (Path(fresh_site) / "flowaudit-test-deps.pth").write_text("\n".join(deps) + "\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A working directory outside the checkout and an environment without our overrides."""
    assert ROOT not in tmp_path.parents
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FLOWAUDIT_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    yield tmp_path, env


def test_the_wheel_holds_every_file_of_the_packages(built: tuple[Path, list[str]]) -> None:
    wheel, files = built
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    wanted = {name for name in files if name.split("/", 1)[0] in PACKAGES}
    assert wanted - names == set()
    for data in ("policies/privacy-by-default.toml", "migrations/script.py.mako",
                 "migrations/env.py", "pipeline/demo_event/fete-2026.toml",
                 "pipeline/demo_event/catalogue.csv", "pipeline/demo_event/artist/veto.txt"):
        assert data in names
    assert not {n.split("/", 1)[0] for n in names} & {"tests", "bench", "examples"}


def test_the_fresh_venv_imports_the_wheel_not_the_checkout(
    venv: Path, outside: tuple[Path, dict[str, str]]
) -> None:
    cwd, env = outside
    probe = (
        "import json, flowaudit, retention, pipeline, audit, migrations, policies\n"
        "from retention.policy import policy_dir\n"
        "from retention.db import alembic_config\n"
        "from pipeline.event import default_event_file\n"
        "where = {m.__name__: m.__file__ for m in "
        "(flowaudit, retention, pipeline, audit, migrations, policies)}\n"
        "where['policy_dir'] = str(policy_dir())\n"
        "where['event'] = str(default_event_file())\n"
        "where['alembic'] = alembic_config('sqlite:///x.db').get_main_option('script_location')\n"
        "print(json.dumps(where))\n"
    )
    result = _run([venv / "bin" / "python", "-c", probe], cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    where = {name: Path(path).resolve() for name, path in json.loads(result.stdout).items()}
    assert set(where) >= {"flowaudit", "retention", "pipeline", "audit"}
    for name, path in where.items():
        assert venv.resolve() in path.parents, f"{name} came from {path}"
        assert ROOT not in path.parents, f"{name} came from the checkout: {path}"


def test_policy_list_shows_the_shipped_profiles(
    venv: Path, outside: tuple[Path, dict[str, str]]
) -> None:
    cwd, env = outside
    result = _run([venv / "bin" / "flowaudit", "policy", "list", "--format", "json"],
                  cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    assert [row["name"] for row in json.loads(result.stdout)] == SHIPPED


def test_init_run_event_and_verify_from_the_wheel(
    venv: Path, outside: tuple[Path, dict[str, str]]
) -> None:
    cwd, env = outside
    flowaudit, home = venv / "bin" / "flowaudit", cwd / "H"

    init = _run([flowaudit, "init", "--home", home], cwd=cwd, env=env)
    assert init.returncode == 0, init.stderr
    assert f"initialised flowaudit home at {home}" in init.stdout
    assert "policy:   privacy-by-default" in init.stdout

    run = _run([flowaudit, "run-event", "--home", home, "--source", "synth:4",
                "--duration", "2m", "--format", "json"], cwd=cwd, env=env)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["event_id"] == "fete-2026-republique"  # the demo event shipped in the wheel
    assert summary["policy"] == "privacy-by-default"
    assert summary["wristbands"] == 4 and summary["frames_in"] > 0
    assert summary["window_scores"] > 0 and summary["decisions"] >= 1  # catalogue was read

    verify = _run([flowaudit, "audit", "verify", "--home", home], cwd=cwd, env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "audit log verified" in verify.stdout



def test_the_demo_runs_from_the_wheel(venv: Path, outside: tuple[Path, dict[str, str]]) -> None:
    cwd, env = outside
    demo = _run([venv / "bin" / "flowaudit", "demo", "--home", cwd / "D", "--wristbands", "2"],
                cwd=cwd, env=env)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    for policy in ("privacy-by-default", "spotify-2026"):
        assert f"event fete-2026-republique-{policy} under {policy}" in demo.stdout
        assert (cwd / "D" / "reports" / policy / "gdpr.html").is_file()
    assert (cwd / "D" / "reports" / "compare.html").is_file()
    assert f"demo home: {cwd / 'D'}" in demo.stdout
