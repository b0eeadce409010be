"""int8 graphs: `ssps quantize` writes a checked model.int8.onnx, load_model runs the
precision asked for (argument, $SSPS_PRECISION, the model's default), and every wrong
precision, missing or tampered graph, or unchecked default is a clear ModelError.

Uses the session's random-init model (tests/conftest.py): its EERs mean nothing, so the
tests check what is written and which graph runs, not accuracy.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

pytest.importorskip("onnx", reason="quantising needs the onnx package (the [train] extra)")

import ssps  # noqa: E402
from ssps import model_dir as md  # noqa: E402
from ssps.cli import main as cli  # noqa: E402
from ssps.train.quantize import embedding_head_nodes  # noqa: E402
from ssps.train.quantize import main as quantize  # noqa: E402


def load(directory, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssps.UntrainedModelWarning)
        return ssps.load_model(directory, threads=1, **kwargs)


@pytest.fixture(scope="module")
def trials(speech, tmp_path_factory):
    """A trial list over the shared speech files (paths relative to their folder)."""
    path = tmp_path_factory.mktemp("trials") / "trials.txt"
    path.write_text("1 a1.wav a2.wav\n1 a1.wav a_48k_stereo.wav\n0 a1.wav b.wav\n0 a2.wav b.wav\n")
    return path


@pytest.fixture(scope="module")
def int8_dir(random_model_dir, speech, trials, tmp_path_factory):
    """A copy of the test model, quantised, calibrated and checked on ``trials``, int8 by default."""
    directory = tmp_path_factory.mktemp("int8") / "model"
    shutil.copytree(random_model_dir, directory)
    code = quantize([str(directory), "--calibration-clips", "4", "--calibrate-trials", str(trials), "--check-trials", str(trials),
                     "--root", str(speech["a1"].parent), "--accepted-eer-increase", "100", "--min-cosine", "0", "--set-default", "--threads", "1"])
    assert code == 0
    return directory


@pytest.fixture
def fp32_copy(random_model_dir, tmp_path):
    directory = tmp_path / "model"
    shutil.copytree(random_model_dir, directory)
    return directory


def test_quantize_writes_a_listed_checked_int8_graph(int8_dir, random_model_dir):
    config = md.read_config(int8_dir)
    variant = config.variants[md.INT8]
    assert variant.file == md.INT8_ONNX_FILE
    assert variant.sha256 == md.sha256_of(int8_dir / md.INT8_ONNX_FILE)
    assert variant.method["calibration_clips"] == 4 and "QDQ" in variant.method["method"]
    assert variant.method["fp32_nodes"] == embedding_head_nodes(int8_dir / md.ONNX_FILE)
    # In the int8 graph the head really reads fp32 tensors; the layers before it are quantised.
    import onnx

    graph = onnx.load(str(int8_dir / md.INT8_ONNX_FILE)).graph
    producer = {output: node.op_type for node in graph.node for output in node.output}
    inputs = {node.name: [producer.get(name) for name in node.input] for node in graph.node}
    assert all("DequantizeLinear" not in inputs[name] for name in variant.method["fp32_nodes"])
    assert sum("DequantizeLinear" in feeds for feeds in inputs.values()) > 10
    check = variant.accuracy
    assert check["accepted"] is True and check["trials"] == "trials.txt (4 trials)"
    assert set(check) >= {"fp32", "int8", "eer_increase", "cosine_to_fp32"}
    assert config.default_precision == md.INT8
    # model.onnx is untouched, and the int8 graph is a different, smaller file.
    assert md.sha256_of(int8_dir / md.ONNX_FILE) == md.read_config(random_model_dir).onnx_sha256
    assert (int8_dir / md.INT8_ONNX_FILE).stat().st_size < (int8_dir / md.ONNX_FILE).stat().st_size


def test_load_model_runs_the_precision_asked_for(int8_dir, speech, monkeypatch):
    monkeypatch.delenv("SSPS_PRECISION", raising=False)
    default, fp32 = load(int8_dir), load(int8_dir, precision="fp32")
    assert default.precision == "int8" and fp32.precision == "fp32"
    # The model id names the graph that runs, so enrolments of one are refused by the other.
    assert default.model_id != fp32.model_id
    assert fp32.model_id.endswith(md.read_config(int8_dir).onnx_sha256[:12])
    e_int8, e_fp32 = default.embed(speech["a1"]), fp32.embed(speech["a1"])
    assert not np.array_equal(e_int8, e_fp32)  # really another graph...
    assert float(e_int8 @ e_fp32) > 0.9  # ...of the same model
    monkeypatch.setenv("SSPS_PRECISION", "fp32")
    assert load(int8_dir).precision == "fp32"  # the environment beats the model's default
    assert load(int8_dir, precision="int8").precision == "int8"  # the argument beats both


def test_the_embedding_head_stays_fp32(random_model_dir):
    import onnx

    heads = embedding_head_nodes(random_model_dir / md.ONNX_FILE)
    graph = onnx.load(str(random_model_dir / md.ONNX_FILE)).graph
    ops = {node.name: node.op_type for node in graph.node}
    # ECAPA's head: two attention convolutions in the pooling, the embedding layer.
    assert sorted(ops[name] for name in heads) == ["Conv", "Conv", "Gemm"]


def test_int8_scores_with_its_own_thresholds_and_calibration(int8_dir):
    config = md.read_config(int8_dir)
    variant = config.variants[md.INT8]
    assert set(variant.thresholds) == {"eer", "far1"} and variant.calibration is not None
    assert variant.thresholds["eer"].measured_on == "trials.txt (4 trials)"
    int8, fp32 = load(int8_dir), load(int8_dir, precision="fp32")
    assert int8.threshold() == variant.thresholds["eer"].value
    assert fp32.threshold() == config.thresholds["eer"].value  # fp32 keeps its own
    log_odds = variant.calibration.scale * 0.5 + variant.calibration.offset
    assert int8.probability(0.5) == pytest.approx(0.5 * (1 + np.tanh(log_odds / 2)))  # the same logistic, overflow-free
    assert int8.probability(-1.0) >= 0.0 and int8.probability(1.0) <= 1.0  # steep fits (4 trials) must not overflow


def test_ssps_calibrate_writes_the_graph_it_scored(int8_dir, speech, trials, tmp_path, capsys):
    directory = tmp_path / "model"
    shutil.copytree(int8_dir, directory)
    before = md.read_config(directory)
    code = cli(["calibrate", "--model", str(directory), "--precision", "int8", "--trials", str(trials),
                "--root", str(speech["a1"].parent), "--no-cache", "-q", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    assert "of the int8 graph" in capsys.readouterr().out
    after = md.read_config(directory)
    assert after.thresholds == before.thresholds and after.calibration == before.calibration  # fp32 untouched
    assert after.variants[md.INT8].thresholds["eer"].measured_on == "trials.txt (4 trials)"


def test_sessions_do_not_spin(int8_dir):
    options = load(int8_dir).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize("precision, message", [("fp16", "unknown precision 'fp16'"), ("int8", "ssps quantize")])
def test_a_precision_the_model_lacks_is_a_clear_error(fp32_copy, precision, message):
    with pytest.raises(ssps.ModelError, match=message):
        load(fp32_copy, precision=precision)


def test_a_tampered_int8_graph_is_refused(int8_dir, tmp_path):
    directory = tmp_path / "model"
    shutil.copytree(int8_dir, directory)
    with open(directory / md.INT8_ONNX_FILE, "r+b") as f:
        f.seek(100)
        f.write(b"\x00" * 8)
    with pytest.raises(ssps.ModelError, match="does not match the sha256"):
        load(directory)
    assert load(directory, precision="fp32").precision == "fp32"  # the fp32 graph is still usable


def test_a_default_precision_without_its_graph_is_malformed(fp32_copy):
    config = json.loads((fp32_copy / md.CONFIG_FILE).read_text())
    (fp32_copy / md.CONFIG_FILE).write_text(json.dumps({**config, "default_precision": "int8"}))
    with pytest.raises(ssps.ModelError, match="malformed"):
        load(fp32_copy)


def test_fp32_only_configs_are_written_as_before(random_model_dir):
    written = json.loads((random_model_dir / md.CONFIG_FILE).read_text())
    assert "variants" not in written and "default_precision" not in written  # older ssps still read it


def test_set_default_needs_a_check_and_writes_nothing_without_one(fp32_copy, capsys):
    assert quantize([str(fp32_copy), "--set-default"]) == 2
    assert "--check-trials" in capsys.readouterr().err
    assert not (fp32_copy / md.INT8_ONNX_FILE).exists()
    assert md.read_config(fp32_copy).variants == {}


def test_set_default_is_refused_when_int8_loses_accuracy(fp32_copy, speech, trials, capsys):
    code = quantize([str(fp32_copy), "--calibration-clips", "2", "--check-trials", str(trials), "--root",
                     str(speech["a1"].parent), "--accepted-eer-increase", "-1000", "--set-default", "--threads", "1"])
    assert code == 2
    assert "int8 not made the default: its EER rose by" in capsys.readouterr().err
    config = md.read_config(fp32_copy)
    assert config.default_precision == md.FP32
    assert config.variants[md.INT8].accuracy["accepted"] is False  # the failed check is kept, for the record
    assert load(fp32_copy, precision="int8").precision == "int8"  # still usable when asked for


def test_check_trials_with_a_wrong_root_says_so(fp32_copy, trials, tmp_path, capsys):
    code = quantize([str(fp32_copy), "--calibration-clips", "2", "--check-trials", str(trials), "--root", str(tmp_path)])
    assert code == 2
    assert "--root" in capsys.readouterr().err


def test_quantize_a_folder_that_is_not_a_model(tmp_path, capsys):
    assert quantize([str(tmp_path)]) == 2
    assert "not a model directory" in capsys.readouterr().err


def test_cli_precision_flag_and_info(int8_dir, speech, capsys):
    assert cli(["info", "--model", str(int8_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["precision"] == "int8"
    assert set(info["precisions"]) == {"fp32", "int8"} and "(default)" in info["precisions"]["int8"]
    code = cli(["verify", str(speech["a1"]), str(speech["b"]), "--model", str(int8_dir), "--precision", "fp32", "--json"])
    assert code in (0, 1)
    assert json.loads(capsys.readouterr().out)["model"] == load(int8_dir, precision="fp32").model_id
    assert cli(["verify", str(speech["a1"]), str(speech["b"]), "--precision", "fp16"]) == 2  # argparse refuses it


def test_server_setting_precision_is_validated():
    pytest.importorskip("fastapi", reason="the server needs the [serve] extra")
    from serve import Settings

    assert Settings(precision="int8").validate().precision == "int8"
    with pytest.raises(ValueError, match="precision must be one of fp32, int8"):
        Settings(precision="fp16").validate()


def test_quantize_without_onnx_says_what_to_install(fp32_copy, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    assert quantize([str(fp32_copy), "--calibration-clips", "1"]) == 2
    assert "pip install 'ssps[train]'" in capsys.readouterr().err
    assert not (fp32_copy / md.INT8_ONNX_FILE).exists()
