"""The default model shipped in models/ and the main job the README gives."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ssps
from ssps import inference
from ssps import model_dir as md

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO / "models" / inference.DEFAULT_MODEL_NAME
EXAMPLES = REPO / "examples"


def test_the_default_model_is_a_trained_calibrated_model_directory():
    config = md.read_config(DEFAULT_DIR)
    md.check_onnx_integrity(DEFAULT_DIR, config)
    assert not config.untrained
    assert {"eer", "far1"} <= set(config.thresholds)
    assert config.calibration and config.calibration.scale > 0
    # The card is written for this model, not the export template.
    card = (DEFAULT_DIR / "README.md").read_text()
    assert "To be written by whoever publishes" not in card
    assert "non-commercial" in card


def test_the_default_model_runs_its_checked_int8_graph(monkeypatch):
    """bench/ measured int8 faster at equal accuracy (docs/benchmarks.md): it is the default,
    with its own thresholds fitted on the same list as fp32's, and its check on record."""
    monkeypatch.delenv(inference.PRECISION_ENV, raising=False)
    config = md.read_config(DEFAULT_DIR)
    assert config.default_precision == md.INT8
    md.check_onnx_integrity(DEFAULT_DIR, config, md.INT8)
    int8 = config.variants[md.INT8]
    assert int8.accuracy["accepted"] and int8.accuracy["eer_increase"] <= int8.accuracy["accepted_eer_increase"]
    assert int8.thresholds["eer"].measured_on == config.thresholds["eer"].measured_on
    assert ssps.load_model(DEFAULT_DIR).precision == md.INT8


def test_load_model_without_argument_uses_the_bundled_default(monkeypatch):
    monkeypatch.delenv(inference.MODEL_ENV, raising=False)
    model = ssps.load_model()
    assert Path(model.directory).resolve() == DEFAULT_DIR.resolve()
    same = model.verify(EXAMPLES / "jackson_1.wav", EXAMPLES / "jackson_2.wav")
    other = model.verify(EXAMPLES / "jackson_1.wav", EXAMPLES / "george_1.wav")
    assert same.same_speaker
    # The ranking must be right even where the synthetic-speech threshold is not (see the card).
    assert same.score > other.score


def test_main_job_runs_on_a_fresh_shell_and_answers_for_both_pairs():
    env = {k: v for k, v in os.environ.items() if k != inference.MODEL_ENV}
    done = subprocess.run(["bash", str(REPO / "scripts" / "main_job.sh")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    answers = re.findall(r"^(same speaker|different speakers): score (-?[0-9.]+)", done.stdout, re.MULTILINE)
    assert len(answers) == 2, done.stdout
    assert answers[0][0] == "same speaker"
    assert float(answers[0][1]) > float(answers[1][1])


def test_verify_json_from_the_cli_names_the_default_model():
    done = subprocess.run([sys.executable, "-m", "ssps", "verify", str(EXAMPLES / "jackson_1.wav"),
                           str(EXAMPLES / "jackson_2.wav"), "--json"], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != inference.MODEL_ENV})
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["model"].startswith(inference.DEFAULT_MODEL_NAME + "@")
    assert answer["same_speaker"] is True


@pytest.mark.parametrize("name", ["model.onnx", "model.int8.onnx", "config.json", "README.md"])
def test_the_wheel_ships_what_inference_reads(name):
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"models/{inference.DEFAULT_MODEL_NAME}/{name}"' in pyproject
