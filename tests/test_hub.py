"""hf:// references against a local Hugging Face cache (offline), and upload preparation.

The Hub itself cannot be reached from here. What is exercised: parsing; resolution of
branches, tags and commit hashes from a local cache and through huggingface_hub's real
download code against a loopback stand-in for the Hub API (FakeHub below: only the routes
snapshot_download uses); offline behaviour; the sha256 check after download; and
everything `ssps push` does before its first network call (with HfApi replaced by a fake).
Not exercised: the real Hub (its full API, redirects to a CDN, Xet storage), authentication,
and a real upload.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import pytest
from conftest import write_hub_cache

import ssps
from ssps.cli import main
from ssps.hub import HubRef, parse_hf_ref, prepare_upload, push_model

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def load(ref):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ssps.UntrainedModelWarning)
        return ssps.load_model(ref, threads=1)


def renamed_copy(model_dir, tmp_path, name):
    copy = tmp_path / name
    shutil.copytree(model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["name"] = name
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_parse_hf_ref():
    assert parse_hf_ref("hf://org/name") == HubRef("org/name", None)
    assert parse_hf_ref("hf://org/ssps-ecapa.v2@v1.0") == HubRef("org/ssps-ecapa.v2", "v1.0")
    assert parse_hf_ref("org/name@" + COMMIT_A) == HubRef("org/name", COMMIT_A)
    for bad in ("hf://", "hf://name-only", "hf://org/name@", "hf://a/b/c", "hf://org/na me"):
        with pytest.raises(ssps.ModelError, match="hf://ORG/NAME"):
            parse_hf_ref(bad)


def test_cached_model_loads_offline_with_revision_pinning(random_model_dir, hub_cache, tmp_path):
    write_hub_cache(hub_cache, "org/ssps-test", renamed_copy(random_model_dir, tmp_path, "first"), COMMIT_A, refs=("v1",))
    write_hub_cache(hub_cache, "org/ssps-test", renamed_copy(random_model_dir, tmp_path, "second"), COMMIT_B, refs=("main",))
    assert load("hf://org/ssps-test").config.name == "second"  # main
    assert load("hf://org/ssps-test@v1").config.name == "first"  # a tag or branch
    assert load(f"hf://org/ssps-test@{COMMIT_A}").config.name == "first"  # a commit
    assert load("hf://org/ssps-test").source == "hf://org/ssps-test"


def test_offline_with_empty_cache_is_a_model_error(hub_cache):
    with pytest.raises(ssps.ModelError, match="not in the local Hugging Face cache"):
        ssps.load_model("hf://org/not-cached")


def test_unknown_revision_offline_is_a_model_error(random_model_dir, hub_cache):
    write_hub_cache(hub_cache, "org/ssps-test", random_model_dir, COMMIT_A)
    with pytest.raises(ssps.ModelError):
        ssps.load_model("hf://org/ssps-test@no-such-tag")


def test_tampered_download_is_refused(random_model_dir, hub_cache):
    snapshot = write_hub_cache(hub_cache, "org/ssps-test", random_model_dir, COMMIT_A)
    (snapshot / "model.onnx").write_bytes((snapshot / "model.onnx").read_bytes()[:-10])
    with pytest.raises(ssps.ModelError, match="sha256"):
        ssps.load_model("hf://org/ssps-test")


def test_environment_variables_drive_the_cache_and_offline_mode(random_model_dir, tmp_path, speech):
    """The user-facing way: HF_HUB_CACHE and HF_HUB_OFFLINE in the environment, a fresh process."""
    cache = tmp_path / "cache"
    write_hub_cache(cache, "org/ssps-test", random_model_dir, COMMIT_A)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "ssps.cli", "verify", str(speech["a1"]), str(speech["a1"]), "--model", "hf://org/ssps-test"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    missing = subprocess.run(command[:-1] + ["hf://org/other"], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 2 and "not in the local Hugging Face cache" in missing.stderr


# --- downloading through huggingface_hub from a loopback stand-in for the Hub -----------------


class FakeHub:
    """A loopback HTTP server answering the few Hub API routes snapshot_download uses."""

    def __init__(self, repo_id, commits, refs):
        self.repo_id, self.commits, self.refs = repo_id, commits, refs  # commits: sha -> {name: bytes}
        self.requests = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body):
                path = unquote(urlsplit(self.path).path)
                hub.requests.append((self.command, path))
                status, headers, payload = hub.route(path)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def commit_of(self, revision):
        return revision if revision in self.commits else self.refs.get(revision)

    def route(self, path):
        api = f"/api/models/{self.repo_id}/"
        not_found = (404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "not found"}, b"{}")
        if path.startswith(api + "revision/"):
            commit = self.commit_of(path[len(api + "revision/"):])
            if commit is None:
                return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "no such revision"}, b"{}"
            files = [{"rfilename": n} for n in self.commits[commit]]
            return 200, {"Content-Type": "application/json"}, json.dumps({"id": self.repo_id, "sha": commit, "siblings": files}).encode()
        if path.startswith(api + "tree/"):
            commit = self.commit_of(path[len(api + "tree/"):].strip("/"))
            if commit is None:
                return not_found
            entries = [{"type": "file", "path": n, "size": len(d), "oid": hashlib.sha1(d).hexdigest()} for n, d in self.commits[commit].items()]
            return 200, {"Content-Type": "application/json"}, json.dumps(entries).encode()
        prefix = f"/{self.repo_id}/resolve/"
        if path.startswith(prefix):
            revision, _, name = path[len(prefix):].partition("/")
            commit = self.commit_of(revision)
            if commit is None or name not in self.commits[commit]:
                return 404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "no such file"}, b""
            data = self.commits[commit][name]
            return 200, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, data
        return not_found


FETCH = """
import json, sys, warnings
import ssps
warnings.simplefilter("ignore")
results = {}
for ref in sys.argv[1:]:
    try:
        results[ref] = ssps.load_model(ref).config.name
    except ssps.ModelError as err:
        results[ref] = "ModelError: " + str(err)
print(json.dumps(results))
"""


def fetch(refs, **env):
    out = subprocess.run([sys.executable, "-c", FETCH, *refs], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_download_pins_revisions_caches_and_checks_sha(random_model_dir, tmp_path):
    files = {n: (random_model_dir / n).read_bytes() for n in ("model.onnx", "config.json", "README.md")}
    second = {**files, "config.json": json.dumps({**json.loads(files["config.json"]), "name": "second"}).encode()}
    tampered = {**files, "model.onnx": files["model.onnx"][:-10]}
    commit_c = "c" * 40
    hub = FakeHub("org/ssps-test", {COMMIT_A: files, COMMIT_B: second, commit_c: tampered},
                  {"main": COMMIT_B, "v1": COMMIT_A, "broken": commit_c})
    cache = str(tmp_path / "cache")
    try:
        online = fetch(["hf://org/ssps-test@v1", "hf://org/ssps-test", f"hf://org/ssps-test@{COMMIT_A}",
                        "hf://org/ssps-test@broken", "hf://org/ssps-test@nope", "hf://org/missing"],
                       HF_ENDPOINT=hub.url, HF_HUB_CACHE=cache, HF_HUB_DISABLE_TELEMETRY="1")
    finally:
        hub.close()
    assert online["hf://org/ssps-test@v1"] == "random-ecapa"
    assert online["hf://org/ssps-test"] == "second"
    assert online[f"hf://org/ssps-test@{COMMIT_A}"] == "random-ecapa"
    assert "sha256" in online["hf://org/ssps-test@broken"]
    assert "revision 'nope' does not exist" in online["hf://org/ssps-test@nope"]
    assert "does not exist or needs access" in online["hf://org/missing"]
    assert ("GET", "/api/models/org/ssps-test/revision/v1") in hub.requests

    # The server is gone: what was downloaded still loads offline, by branch, tag or commit.
    offline = fetch(["hf://org/ssps-test@v1", "hf://org/ssps-test", f"hf://org/ssps-test@{COMMIT_B}", "hf://org/other"],
                    HF_ENDPOINT=hub.url, HF_HUB_CACHE=cache, HF_HUB_OFFLINE="1")
    assert offline["hf://org/ssps-test@v1"] == "random-ecapa"
    assert offline["hf://org/ssps-test"] == offline[f"hf://org/ssps-test@{COMMIT_B}"] == "second"
    assert "not in the local Hugging Face cache" in offline["hf://org/other"]


# --- publishing ------------------------------------------------------------------------


def test_prepare_upload_lists_files_and_checks_sha(random_model_dir):
    plan = prepare_upload(random_model_dir, "org/ssps-test")
    assert plan.repo_id == "org/ssps-test"
    assert plan.files == ["model.onnx", "config.json", "README.md", "model.safetensors", "train_config.yaml"]
    assert plan.onnx_sha256 == plan.config.onnx_sha256
    assert any("untrained" in w for w in plan.warnings)


def test_prepare_upload_refuses_incomplete_or_tampered(random_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(random_model_dir, copy)
    (copy / "README.md").unlink()
    with pytest.raises(ssps.ModelError, match="README.md"):
        prepare_upload(copy, "org/name")
    (copy / "model.onnx").write_bytes(b"not the exported graph")
    with pytest.raises(ssps.ModelError, match="sha256"):
        prepare_upload(copy, "org/name")
    with pytest.raises(ssps.ModelError):
        prepare_upload(random_model_dir, "not a repo id")


class FakeHfApi:
    calls: ClassVar[list] = []

    def __init__(self, token=None):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, branch, **kwargs):
        self.calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        return type("Commit", (), {"commit_url": "local://fake/commit"})()


def test_push_uploads_the_planned_files(random_model_dir, monkeypatch):
    import huggingface_hub

    FakeHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    url = push_model(random_model_dir, "org/ssps-test", revision="v1", private=True)
    assert url == "local://fake/commit"
    names = [call[0] for call in FakeHfApi.calls]
    assert names == ["init", "create_repo", "create_branch", "upload_folder"]
    upload = FakeHfApi.calls[-1][1]
    assert upload["repo_id"] == "org/ssps-test" and upload["revision"] == "v1"
    assert upload["folder_path"] == str(random_model_dir)
    assert set(upload["allow_patterns"]) == {"model.onnx", "config.json", "README.md", "model.safetensors", "train_config.yaml"}
    assert FakeHfApi.calls[1][2]["private"] is True


def test_cli_push_dry_run(random_model_dir, capsys):
    assert main(["push", str(random_model_dir), "org/ssps-test", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "model.onnx" in out and "README.md" in out and "nothing uploaded" in out
