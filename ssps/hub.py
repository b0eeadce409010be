"""Models on the Hugging Face Hub: resolve ``hf://org/name[@revision]`` and publish a model.

A Hub model repository holds exactly a model directory (see :mod:`ssps.model_dir`).
Downloading goes through ``huggingface_hub``, so its cache (``HF_HUB_CACHE``/``HF_HOME``),
offline mode (``HF_HUB_OFFLINE=1``), endpoint (``HF_ENDPOINT``) and token (``HF_TOKEN`` or
``huggingface-cli login``) all apply. The caller checks ``model.onnx`` against the sha256 in
``config.json`` after download (``ssps.inference.load_model`` always does).

    >>> parse_hf_ref("hf://org/ssps-ecapa@v1.0")
    HubRef(repo_id='org/ssps-ecapa', revision='v1.0')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ssps import model_dir as md
from ssps.errors import ModelError

HF_PREFIX = "hf://"
# What inference downloads: the ONNX graphs, their config and the card (not the PyTorch
# weights). The int8 graph is optional: a repository without one downloads the rest.
INFERENCE_FILES = [md.ONNX_FILE, md.INT8_ONNX_FILE, md.CONFIG_FILE, md.CARD_FILE]
# What `ssps push` uploads: the whole model directory, so training can resume from the Hub.
UPLOAD_FILES = [md.ONNX_FILE, md.INT8_ONNX_FILE, md.CONFIG_FILE, md.CARD_FILE, md.WEIGHTS_FILE, md.TRAIN_CONFIG_FILE]
REQUIRED_UPLOAD_FILES = [md.ONNX_FILE, md.CONFIG_FILE, md.CARD_FILE]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None = None  # branch, tag or commit hash; None = "main"


def is_hf_ref(ref: str) -> bool:
    return isinstance(ref, str) and ref.startswith(HF_PREFIX)


def parse_hf_ref(ref: str) -> HubRef:
    """Split ``hf://org/name[@revision]`` into repository id and revision."""
    body = ref.removeprefix(HF_PREFIX)
    repo_id, _, revision = body.partition("@")
    if not _REPO_ID.match(repo_id) or (revision == "" and "@" in body):
        raise ModelError(f"{ref!r} is not a Hub model reference: write hf://ORG/NAME or hf://ORG/NAME@REVISION")
    return HubRef(repo_id, revision or None)


def download_model(ref: str, *, cache_dir: str | Path | None = None) -> Path:
    """Return the local directory of the Hub model ``ref``, downloading it into the cache if needed.

    Works offline when the revision is already cached; raises ModelError saying what to do
    when it is not, or when the repository or revision does not exist.
    """
    import huggingface_hub
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub_ref = parse_hf_ref(ref)
    try:
        path = huggingface_hub.snapshot_download(
            hub_ref.repo_id,
            revision=hub_ref.revision,
            cache_dir=cache_dir,
            allow_patterns=INFERENCE_FILES,
            library_name="ssps",
        )
    except LocalEntryNotFoundError as err:
        raise ModelError(
            f"{ref} is not in the local Hugging Face cache and the Hub cannot be reached "
            f"(offline mode or no network): connect and retry, unset HF_HUB_OFFLINE, or pass a local "
            f"model directory. ({err.__class__.__name__})"
        ) from err
    except RevisionNotFoundError as err:
        raise ModelError(f"{ref}: revision {hub_ref.revision!r} does not exist on the Hub") from err
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise ModelError(
            f"{ref}: repository {hub_ref.repo_id} does not exist or needs access: check the name, "
            "or log in (HF_TOKEN or `huggingface-cli login`)"
        ) from err
    except (HfHubHTTPError, OSError) as err:
        raise ModelError(f"cannot download {ref}: {err}") from err
    return Path(path)


# --- publishing -------------------------------------------------------------------------


@dataclass
class UploadPlan:
    """What ``ssps push`` will upload, checked before any network call."""

    model_dir: Path
    repo_id: str
    files: list[str]
    config: md.ModelConfig
    onnx_sha256: str
    warnings: list[str] = field(default_factory=list)


def prepare_upload(model_dir: str | Path, repo_id: str) -> UploadPlan:
    """Check a model directory is complete and consistent before publishing it.

    Refuses a directory whose ``model.onnx`` does not match its config, or that has no card.
    """
    model_dir = Path(model_dir)
    repo_id = parse_hf_ref(repo_id).repo_id
    config = md.read_config(model_dir)
    for precision in config.precisions:
        md.check_onnx_integrity(model_dir, config, precision)
    missing = [name for name in REQUIRED_UPLOAD_FILES if not (model_dir / name).is_file()]
    if missing:
        raise ModelError(f"{model_dir} lacks {', '.join(missing)}: a published model needs its graph, config and card")
    listed_graphs = {config.onnx_file(precision)[0] for precision in config.precisions}
    files = [name for name in UPLOAD_FILES if (model_dir / name).is_file()
             and (not name.endswith(".onnx") or name in listed_graphs)]  # never a graph config.json does not vouch for
    plan = UploadPlan(model_dir, repo_id, files, config, config.onnx_sha256)
    if config.untrained:
        plan.warnings.append("the model is marked untrained (random weights): its scores mean nothing")
    if not config.thresholds:
        plan.warnings.append("the model has no calibrated threshold: users must pass one")
    if md.WEIGHTS_FILE not in files:
        plan.warnings.append(f"no {md.WEIGHTS_FILE}: the upload cannot be fine-tuned from")
    return plan


def push_model(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Upload a model directory (graph, config, card, weights) to the Hub; return the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    plan = prepare_upload(model_dir, repo_id)
    api = HfApi(token=token)
    try:
        api.create_repo(plan.repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(plan.repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=plan.repo_id,
            folder_path=str(plan.model_dir),
            allow_patterns=plan.files,
            revision=revision,
            commit_message=commit_message or f"Upload {plan.config.name} (model.onnx sha256 {plan.onnx_sha256[:12]})",
        )
    except (HfHubHTTPError, OSError) as err:
        raise ModelError(f"upload to {plan.repo_id} failed: {err}. Check the token (HF_TOKEN) and network.") from err
    return str(getattr(commit, "commit_url", commit))
