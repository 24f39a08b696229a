"""sgdq.experiments.notebook, .config and .provenance: parameter validation, profiles, provenance."""

import pytest
import torch

from sgdq.experiments import config, notebook

BASE = dict(profile="smoke", device="cpu", seed=0)
INJECTED = '# Parameters\nprofile = "smoke"\nn_strats = 5\n'


def test_injected_names_are_read_from_papermills_cell():
    history = ["import x", INJECTED, "# not parameters\nfoo = 1"]
    assert notebook._injected_names(history) == {"profile", "n_strats"}


def test_undeclared_injected_name_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['n_strats'\].*declares"):
        notebook.start("01_math", ["", INJECTED], n_starts=None, steps=None, **BASE)


def test_declared_injected_names_pass_and_override_the_profile():
    run = notebook.start("01_math", ['# Parameters\nn_starts = 7\n'], n_starts=7, steps=None, **BASE)
    assert run.settings == {"n_starts": 7, "steps": notebook.SETTINGS["01_math"]["smoke"]["steps"]}
    assert run.device == torch.device("cpu")


@pytest.mark.parametrize("key,value,match", [
    ("profile", "full", r"'profile' must be one of \('smoke', 'cpu', 'paper'\)"),
    ("device", "gpu", r"'device' must be one of \('auto', 'cpu', 'cuda'\)"),
    ("seed", -1, r"'seed' must be an integer >= 0"),
    ("seed", 1.5, r"'seed' must be an integer >= 0"),
])
def test_bad_values_name_the_parameter_and_the_choices(key, value, match):
    with pytest.raises(ValueError, match=match):
        notebook.start("02_circuit", None, **{**BASE, key: value})


@pytest.mark.parametrize("nb,key,value,match", [
    ("01_math", "n_starts", 0, r"parameter 'n_starts' must be an integer >= 1, got 0"),
    ("01_math", "steps", -5, r"parameter 'steps' must be an integer >= 1, got -5"),
    ("02_circuit", "n_points", 2.5, r"parameter 'n_points' must be an integer >= 1"),
    ("02_circuit", "n_aer", "16", r"parameter 'n_aer' must be an integer >= 1"),
    ("03_optimizer", "seeds", 0, r"parameter 'seeds' must be an integer >= 1"),
    ("08_performance", "quick", "yes", r"parameter 'quick' must be True or False"),
])
def test_knobs_are_validated_before_any_compute(nb, key, value, match):
    knobs = {k: None for k in notebook.KNOBS[nb]}
    with pytest.raises(ValueError, match=match):
        notebook.start(nb, None, **{**BASE, **knobs, key: value})


def test_notebook_choices_are_enforced():
    with pytest.raises(ValueError, match=r"'readout' must be one of \('a', 'b'\), got 'c'"):
        notebook.start("04_quantum_attention", None, choices=dict(readout=("a", "b")), readout="c", **BASE)


def test_cuda_without_a_gpu_is_a_plain_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        notebook.start("02_circuit", None, **{**BASE, "device": "cuda"})
    assert config.resolve_device("auto") == torch.device("cpu")


def test_seeding_makes_runs_repeatable():
    notebook.start("02_circuit", None, **BASE)
    a = torch.rand(3)
    notebook.start("02_circuit", None, **BASE)
    assert torch.equal(a, torch.rand(3))


def test_provenance_block_has_the_fields(capsys):
    info = notebook.start("02_circuit", None, **BASE).provenance()
    assert {"git_commit", "device", "profile", "parameters", "versions", "wall_time_s"} <= set(info)
    assert info["versions"]["torch"] == torch.__version__ or info["versions"]["torch"].startswith(torch.__version__[:4])
    assert '"profile": "smoke"' in capsys.readouterr().out


def test_every_notebook_has_settings_for_every_profile():
    for name, profiles in notebook.SETTINGS.items():
        assert set(profiles) == set(config.PROFILES), name
        assert len({tuple(sorted(p)) for p in profiles.values()}) == 1, f"{name}: profiles set different keys"


def test_git_commit_is_dirty_only_for_source_changes(tmp_path):
    import subprocess

    from sgdq.experiments.provenance import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "sgdq").mkdir()
    (tmp_path / "data" / "results").mkdir(parents=True)
    (tmp_path / "sgdq" / "m.py").write_text("x = 1\n")
    (tmp_path / "data" / "results" / "r.csv").write_text("a\n1\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "c")
    assert not git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "data" / "results" / "r.csv").write_text("a\n2\n")  # a run's own output
    assert not git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "sgdq" / "m.py").write_text("x = 2\n")  # the code that produces results
    assert git_commit(tmp_path).endswith("+dirty")
