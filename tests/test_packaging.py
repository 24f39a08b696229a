"""The project's set-up: pyproject.toml and environment.yml name the same packages."""

import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name
NOT_PACKAGES = {"python", "pip"}


def split(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
    name = m.group(1).lower().replace("_", "-")
    return CONDA_NAMES.get(name, name), m.group(2).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = {}
    for req in project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]:
        name, spec = split(req)
        assert reqs.get(name, spec) == spec, f"{name} has two different specifiers in pyproject.toml"
        reqs[name] = spec
    return reqs


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    reqs = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, spec = split(dep)
            if name not in NOT_PACKAGES:
                reqs[name] = spec
    return reqs


def test_environment_yml_and_pyproject_name_the_same_packages():
    py, conda = pyproject_requirements(), conda_requirements()
    assert sorted(set(py) - set(conda)) == [], "in pyproject.toml but not in environment.yml"
    assert sorted(set(conda) - set(py)) == [], "in environment.yml but not in pyproject.toml"
    assert {n: s for n, s in py.items() if conda[n] != s} == {}, "version specifiers differ"


def test_extras_exist_and_torch_is_bounded():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"book", "llm", "test"} <= set(project["optional-dependencies"])
    assert project["requires-python"] == ">=3.11"
    torch_spec = dict(map(split, project["dependencies"]))["torch"]
    assert torch_spec, "torch must carry a version bound"


def test_drift_is_detected(tmp_path, monkeypatch):
    """The drift check itself can fail: drop one package from a copy of environment.yml."""
    text = (ROOT / "environment.yml").read_text().replace("  - seaborn>=0.13\n", "")
    (tmp_path / "environment.yml").write_text(text)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    py, conda = pyproject_requirements(), conda_requirements()
    assert set(py) - set(conda) == {"seaborn"}


def test_top_level_layout():
    for path in ["book", "notebooks", "sgdq", "data", "tests", "benchmarks", "environment.yml", "_config.yml",
                 "_toc.yml", "README.md", ".ci/run"]:
        assert (ROOT / path).exists(), path


def _lock():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import lock
    finally:
        sys.path.pop(0)
    return lock


def test_the_lock_pins_every_declared_package_within_its_range():
    """requirements-lock.txt pins (==) every package pyproject.toml and environment.yml name
    (torch aside), and each pin satisfies both files' ranges: the three stay consistent."""
    from packaging.specifiers import SpecifierSet

    pins = _lock().read()
    for name, spec in {**conda_requirements(), **pyproject_requirements()}.items():
        if name == "torch":
            continue
        assert name in pins, f"{name} is not in requirements-lock.txt (run python scripts/lock.py)"
        assert pins[name] in SpecifierSet(spec), f"{name}=={pins[name]} is outside {spec!r}"
    assert "torch" not in pins


def test_install_and_ci_use_the_lock():
    assert "-c requirements-lock.txt" in (ROOT / "scripts" / "install.sh").read_text()
    assert "requirements-lock.txt" in (ROOT / "Makefile").read_text()


def test_the_lock_check_detects_drift(tmp_path, monkeypatch, capsys):
    lock = _lock()
    pins = lock.read()
    name = next(iter(pins))
    drifted = tmp_path / "requirements-lock.txt"
    drifted.write_text(lock.render({**pins, name: "0.0.0"}))
    monkeypatch.setattr(lock, "LOCK", drifted)
    installed = lock.closure()
    if installed.get(name) != pins[name]:
        import pytest

        pytest.skip("this environment already differs from the lock")
    assert lock.main(["--check"]) == 1
    assert f"{name}: locked 0.0.0" in capsys.readouterr().out


def test_no_test_can_hang():
    """pytest-timeout is configured for every test, so a hang fails CI instead of stalling it."""
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert 0 < ini["timeout"] <= 1800
    import pytest_timeout  # noqa: F401  (installed with the test extra)
