"""`import ssps` and every public inference function work without importing torch.

Runs in a fresh interpreter (this test process has torch loaded by the model fixture):
loads the test model, embeds, verifies, enrols, identifies, saves and loads enrolments,
decodes audio, resolves an hf:// ref from a local cache and drives the CLI in-process,
then checks that torch never entered sys.modules.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import write_hub_cache

SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    model_dir, a1, a2, b, a8k, a48k, workdir = sys.argv[1:]

    import ssps
    from ssps.cli import main

    model = ssps.load_model(model_dir)
    assert model.embed(a1).shape == (model.dim,)
    assert model.embed_batch([a1, (ssps.load_audio(b, 16000), 16000)]).shape == (2, model.dim)
    model.embed(a8k), model.embed(a48k)
    window_embeddings = model.embed_windows(np.stack(model.windows(model.prepare(a1))))
    result = model.verify(a1, a2)
    model.decide(model.score(model.pool(window_embeddings), model.embed(b)))
    assert ssps.verify(a1, b, model=model_dir).threshold == result.threshold
    model.enroll("jackson", [a1]); model.enroll("george", [b])
    assert model.identify(a2, top_k=2).candidates
    path = model.save_enrollments(workdir + "/speakers.npz")
    assert ssps.load_model(model_dir).load_enrollments(path).names == ["jackson", "george"]
    assert ssps.Enrollment.load(path).model_id == model.model_id
    assert ssps.load_model("hf://org/ssps-test").dim == model.dim
    try:
        ssps.load_audio(workdir + "/missing.wav", 16000)
    except ssps.AudioError as err:
        assert err.code == "file_not_found"
    for argv in (
        ["verify", a1, a2, "--model", model_dir, "--json"],
        ["embed", a1, b, "-o", workdir + "/emb.npz", "--model", model_dir, "-q"],
        ["enroll", "jackson", a1, "--store", workdir + "/cli.npz", "--model", model_dir],
        ["identify", a2, "--store", workdir + "/cli.npz", "--model", model_dir],
        ["info", "--model", "hf://org/ssps-test"],
        ["push", model_dir, "org/ssps-test", "--dry-run"],
        ["eval"],
    ):
        assert main(argv) in (0, 1, 2), argv
    try:
        ssps.load_model(model_dir, vad=True).embed(a1)  # when a Silero VAD package is installed
    except ssps.ModelError:
        pass

    loaded = sorted(name for name in sys.modules if name == "torch" or name.startswith("torch."))
    assert not loaded, f"torch was imported: {loaded[:5]}"
    print("TORCH-FREE OK")
    """
)


def test_public_inference_api_never_imports_torch(random_model_dir, speech, tmp_path):
    cache = tmp_path / "hf-cache"
    write_hub_cache(cache, "org/ssps-test", random_model_dir, "c" * 40)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    files = [speech[k] for k in ("a1", "a2", "b", "a_8k", "a_48k_stereo")]
    command = [sys.executable, "-c", SCRIPT, str(random_model_dir), *map(str, files), str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0 and "TORCH-FREE OK" in out.stdout, out.stdout + out.stderr
