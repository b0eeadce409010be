"""The `ssps` command, run in-process through ssps.cli.main (exit codes are the contract)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from ssps.cli import main


@pytest.fixture
def run(random_model_dir, capsys):
    """Run `ssps ARGS... --model <test model>`; return (exit code, stdout, stderr)."""

    def run_(*args, model=True):
        argv = [str(a) for a in args] + (["--model", str(random_model_dir), "--threads", "1"] if model else [])
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run_


def test_verify_exit_codes_and_json(run, speech):
    code, out, err = run("verify", speech["a1"], speech["a1"], "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["same_speaker"] is True and result["threshold"] == 0.5 and result["probability"] is not None
    assert "untrained" in err  # the warning reaches the user, as one readable line
    code, out, _ = run("verify", speech["a1"], speech["b"], "--threshold", "1.01")
    assert code == 1 and out.startswith("different speakers")
    code, out, _ = run("verify", speech["a1"], speech["a1"], "--threshold", "eer")
    assert code == 0 and out.startswith("same speaker")


@pytest.mark.parametrize("problem", ["missing", "empty", "text", "short"])
def test_verify_bad_input_exits_2_with_a_message(run, speech, tmp_path, problem):
    bad = tmp_path / "bad.wav"
    if problem == "empty":
        bad.write_bytes(b"")
    elif problem == "text":
        bad.write_text("hello, I am text\n" * 20)
    elif problem == "short":
        import soundfile as sf

        sf.write(bad, 0.1 * np.ones(1600, dtype=np.float32), 16_000)
    code, out, err = run("verify", bad, speech["a1"])
    assert code == 2 and out == ""
    assert "ssps verify: error:" in err and "Traceback" not in err


def test_verify_errors_about_model_and_threshold(run, speech, tmp_path):
    code, _, err = run("verify", speech["a1"], speech["a2"], "--model", tmp_path, model=False)
    assert code == 2 and "config.json" in err
    code, _, err = run("verify", speech["a1"], speech["a2"], "--threshold", "far1")
    assert code == 2 and "far1" in err


def test_usage_errors_and_help(run):
    assert run("verify", model=False)[0] == 2
    assert run(model=False)[0] == 2
    assert run("--help", model=False)[0] == 0
    assert run("verify", "--help", model=False)[0] == 0


def test_embed_writes_npz(run, speech, tmp_path):
    out_file = tmp_path / "emb.npz"
    code, _, err = run("embed", speech["a1"], speech["b"], "-o", out_file)
    assert code == 0, err
    with np.load(out_file) as data:
        assert data["embeddings"].shape[0] == 2 and list(data["paths"]) == [str(speech["a1"]), str(speech["b"])]
        assert str(data["model_id"]).startswith("random-ecapa@")
    assert "embedding" in err  # tqdm's progress bar goes to stderr


def test_embed_bad_file_stops_or_is_skipped(run, speech, tmp_path):
    missing = tmp_path / "missing.wav"
    out_file = tmp_path / "emb.npz"
    code, _, err = run("embed", speech["a1"], missing, "-o", out_file)
    assert code == 2 and "missing.wav" in err and not out_file.exists()
    code, _, err = run("embed", speech["a1"], missing, "-o", out_file, "--skip-errors", "-q")
    assert code == 2 and "skipped" in err
    with np.load(out_file) as data:
        assert data["embeddings"].shape[0] == 1


def test_enroll_then_identify(run, speech, tmp_path):
    store = tmp_path / "speakers.npz"
    assert run("enroll", "jackson", speech["a1"], "--store", store)[0] == 0
    assert run("enroll", "george", speech["b"], "--store", store)[0] == 0
    code, out, _ = run("identify", speech["a1"], "--store", store, "--top-k", "2", "--json")
    result = json.loads(out)
    assert code == 0 and result["speaker"] == "jackson" and len(result["candidates"]) == 2
    code, out, _ = run("identify", speech["a1"], "--store", store, "--threshold", "1.01")
    assert code == 1 and out.startswith("unknown")
    code, _, err = run("identify", speech["a1"], "--store", tmp_path / "none.npz")
    assert code == 2 and "does not exist" in err


def test_info(run):
    code, out, _ = run("info", "--json")
    info = json.loads(out)
    assert code == 0 and info["untrained"] is True and info["thresholds"]["eer"]["value"] == 0.5
    assert info["providers"] == ["CPUExecutionProvider"] and info["sample_rate"] == 16_000
    code, out, _ = run("info")
    assert code == 0 and "eer=0.5000" in out


def test_evaluation_commands_are_dispatched(capsys):
    for command, option in (("eval", "--trials"), ("calibrate", "--trials"), ("report", "--figures")):
        assert main([command, "--help"]) == 0
        assert option in capsys.readouterr().out
        assert main([command]) == 2  # a usage error is exit code 2, not an exception
        assert "error" in capsys.readouterr().err


def test_missing_extra_names_the_pip_command(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if not installed
    monkeypatch.delitem(sys.modules, "ssps.train.export", raising=False)
    code, _, err = run("export", "--help", model=False)
    assert code == 2 and "pip install 'ssps[train]'" in err


def test_delegated_command_receives_its_arguments(run, monkeypatch):
    import types

    seen = []
    fake = types.ModuleType("ssps.train.data.manifest")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "ssps.train.data.manifest", fake)
    assert run("data", "manifest", "ROOT", "-o", "x.csv", model=False)[0] == 0
    assert seen == [["ROOT", "-o", "x.csv"]]
