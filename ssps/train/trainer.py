"""The training loop: data -> method -> optimiser, with checkpoints, logs and evaluation.

``train(config)`` runs the whole recipe in ``config.run_dir``:

1. builds the dataset (``ssps.train.data``), the speaker encoder, SSPS (if enabled) and the
   method (``ssps.train.methods``); Adam (or SGD), lr x ``lr_decay`` every
   ``lr_decay_every_epochs`` (or linear warm-up then cosine, stepped every step);
2. resumes from ``RUN_DIR/checkpoints/last.pt`` if it exists (or starts from
   ``train.init_from``'s), so a crashed run continues exactly where it stopped;
3. trains epoch by epoch (bf16 autocast on CPUs that support it, AMP on GPU), saving the
   full state every ``checkpoint.every_steps`` steps and at every epoch end, the encoder
   weights of every epoch, diagnostics, and optionally a validation EER;
4. averages the encoder weights of the last ``checkpoint.average_last`` epochs into
   ``RUN_DIR/encoder.safetensors`` (what ``ssps export RUN_DIR`` exports), evaluates it on
   ``eval.trials`` and writes ``RUN_DIR/metrics.json``.

Run directory::

    train_config.yaml        the resolved config (model: = ModelSpec.to_dict())
    encoder.safetensors      averaged SpeakerEncoder weights
    metrics.json             final evaluation + training summary
    checkpoints/last.pt      full state (method, optimiser, scheduler, position)
    checkpoints/epoch_0007.safetensors   encoder weights after epoch 7 (1-based)
    logs/metrics.csv         every logged value: kind, epoch, step, name, value
    logs/tensorboard/        the same, for TensorBoard (if installed)
    train.log                the text log
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from ssps.errors import ConfigError
from ssps.train import distributed
from ssps.train.augment import Augmenter
from ssps.train.averaging import average_weight_files
from ssps.train.checkpoint import save_weights
from ssps.train.config import Config
from ssps.train.data import SSLDataset, collate, read_manifest
from ssps.train.evaluate import evaluate_trials
from ssps.train.methods import Method, TrainBatch, build_method, method_class
from ssps.train.model import SpeakerEncoder
from ssps.train.positive_sampling import SSPS

logger = logging.getLogger("ssps.train")

LAST_CHECKPOINT = "checkpoints/last.pt"
CONFIG_FILE = "train_config.yaml"
ENCODER_FILE = "encoder.safetensors"
METRICS_FILE = "metrics.json"


def train(config: Config) -> Path:
    return Trainer(config).fit()


class Trainer:
    def __init__(self, config: Config):
        self.config = config
        self.device = distributed.init_distributed(_device_type(config.train.device))
        self.run_dir = Path(config.run_dir)
        self.autocast_dtype = _autocast_dtype(config.train.precision, self.device)
        if distributed.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            _write_atomically(self.run_dir / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
        distributed.barrier()
        self.log = RunLogger(self.run_dir, enabled=distributed.is_main(), tensorboard=config.train.tensorboard)

        global_batch = config.train.batch_size
        if global_batch % distributed.world_size():
            raise ConfigError(f"train.batch_size ({global_batch}) must be divisible by the number of processes ({distributed.world_size()})")
        self.batch_per_rank = global_batch // distributed.world_size()

        for trials in [*config.eval.trials, *([config.eval.validation] if config.eval.validation else [])]:
            if not Path(trials.path).is_file():  # fail now, not after days of training
                raise ConfigError(f"eval: trial file {trials.path} does not exist")
        torch.manual_seed(config.seed)  # the same initial weights on every rank and every run
        self.dataset = self._build_dataset()
        self.steps_per_epoch = len(self.dataset) // global_batch
        if self.steps_per_epoch == 0:
            raise ConfigError(f"train.batch_size ({global_batch}) exceeds the number of training utterances ({len(self.dataset)})")
        method_cls = method_class(config.method.name)
        num_speakers = self._num_speakers() if method_cls.needs_labels else None
        self.method: Method = build_method(config.method.options, SpeakerEncoder(config.model), num_speakers=num_speakers)
        # SSPS after the method: Q' stores what the method's loss sees (method.embedding_dim).
        self.method.ssps = self.ssps = self._build_ssps(self.method)
        self.method.to(self.device)
        self.model = self.method
        if distributed.is_distributed():
            # Buffers are not broadcast each step: SSPS and MoCo queues are kept identical by
            # gathered writes, and the encoder's batch-norm statistics stay per rank (rank 0's are saved).
            self.model = DistributedDataParallel(self.method, broadcast_buffers=False)
        self.optimizer, self.scheduler = build_optimizer(config.optim, self.method, config.train.epochs * self.steps_per_epoch,
                                                         self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        self.epoch = 0  # 0-based epoch in progress
        self.step_in_epoch = 0  # steps of that epoch already done
        self.global_step = 0
        self.epoch_loss_sum = 0.0  # over the steps of the epoch in progress
        self._restore()

    # ---- building ----------------------------------------------------------------------
    def _build_dataset(self) -> SSLDataset:
        data = self.config.data
        if not data.train_manifest:
            raise ConfigError("data.train_manifest is not set: point it at a manifest CSV (ssps.train.data.manifest)")
        utterances = read_manifest(data.train_manifest)
        augment = None if data.augment.strategy == "none" else Augmenter(data.augment, speech=utterances)
        ssps = self.config.ssps
        method = method_class(self.config.method.name)
        return SSLDataset(
            utterances,
            frame_seconds=data.frame_seconds,
            num_views=method.num_views,
            view_seconds=method.views_for(self.config.method.options),
            reference_seconds=ssps.reference_seconds if ssps.enabled else None,
            augment=augment,
            positive=data.positive,
            sample_rate=self.config.model.frontend.sample_rate,
            seed=self.config.seed,
        )

    def _num_speakers(self) -> int:
        """For the supervised baselines: every utterance must have a speaker label."""
        if (self.dataset.speaker_ids < 0).any():
            raise ConfigError(f"method {self.config.method.name!r} is supervised: every utterance of the manifest needs a speaker")
        return len(self.dataset.speaker_names)

    def _build_ssps(self, method: Method) -> SSPS | None:
        if not self.config.ssps.enabled:
            return None
        if method.needs_labels:
            raise ConfigError(f"method {self.config.method.name!r} is supervised: SSPS does not apply (set ssps.enabled=false)")
        if self.config.ssps.sampling == "centroid" and not method.positives_are_representations:
            raise ConfigError(f"ssps.sampling=centroid takes centroids of representations as positives; method "
                              f"{self.config.method.name!r} compares projector outputs: use clustering or nn")
        ssps = SSPS(
            self.config.ssps,
            num_samples=len(self.dataset),
            representation_dim=method.encoder.embedding_dim,  # Q-hat: encoder outputs
            embedding_dim=method.embedding_dim,  # Q': what the loss sees (SimCLR/MoCo: the same)
            seed=self.config.seed,
        )
        ssps.set_labels(self.dataset.speaker_ids, self.dataset.recording_ids)  # diagnostics only
        return ssps

    # ---- the loop ----------------------------------------------------------------------
    def fit(self) -> Path:
        train_cfg = self.config.train
        self.started = time.monotonic()
        self.stopped_early = self._should_stop()  # e.g. resumed with a --max-steps already reached
        while self.epoch < train_cfg.epochs and not self.stopped_early:
            self._train_epoch()
        if self.step_in_epoch > 0:  # stopped mid-epoch: keep the exact position
            self._save_state()
        self._finish()
        self.log.close()
        distributed.barrier()
        return self.run_dir

    def _train_epoch(self) -> None:
        resumed_mid_epoch = self.step_in_epoch > 0
        self.dataset.set_epoch(self.epoch)
        self.method.on_epoch_start(self.epoch)
        if self.ssps is not None:
            self.ssps.on_epoch_start(self.epoch, resumed_mid_epoch=resumed_mid_epoch)
        batches = self.method.epoch_batches(self.dataset, self.batch_per_rank, self.config.seed, self.epoch, self.step_in_epoch)
        if batches is None:
            batches = EpochBatches(len(self.dataset), self.batch_per_rank, self.config.seed, self.epoch, self.step_in_epoch)
        loader = DataLoader(
            self.dataset,
            batch_sampler=batches,
            collate_fn=collate,
            num_workers=self.config.data.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        progress = self.log.progress(self.steps_per_epoch, self.step_in_epoch, f"epoch {self.epoch + 1}/{self.config.train.epochs}",
                                     enabled=self.config.train.progress_bar)
        tick = time.monotonic()
        for raw in loader:
            loss, metrics = self._step(raw)
            self.step_in_epoch += 1
            self.global_step += 1
            self.epoch_loss_sum += loss
            now = time.monotonic()
            samples_per_second = self.config.train.batch_size / max(now - tick, 1e-9)
            tick = now
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.4f}", samples_per_s=f"{samples_per_second:.1f}")
            if self.global_step % self.config.train.log_every_steps == 0:
                lr = self.optimizer.param_groups[0]["lr"]
                self.log.scalars("step", self.epoch, self.global_step, {"loss": loss, "lr": lr, "samples_per_s": samples_per_second, **metrics})
            if self.global_step % self.config.checkpoint.every_steps == 0 and self.step_in_epoch < self.steps_per_epoch:
                self._save_state()
            if self._should_stop():
                self.stopped_early = True
                break
        progress.close()
        if self.step_in_epoch == self.steps_per_epoch:
            self._end_epoch(self.epoch_loss_sum / self.steps_per_epoch)

    def _step(self, raw: dict) -> tuple[float, dict[str, float]]:
        views = [view.to(self.device, non_blocking=True) for view in raw["views"]]
        indices = raw["index"].to(self.device)
        reference = None
        # Labels reach supervised methods only: an SSL method's batch never has any.
        labels = torch.from_numpy(self.dataset.speaker_ids)[raw["index"]].to(self.device) if self.method.needs_labels else None
        with self._autocast():
            if self.ssps is not None:
                self.ssps.begin_step(self.global_step)
                if self.ssps.wants_reference(self.epoch):
                    # The encoder that is exported (DINO: the teacher) encodes the reference frames.
                    reference = self.ssps.encode_references(self.method.exported_encoder(), raw["reference"].to(self.device))
            output = self.model(TrainBatch(views=views, indices=indices, reference=reference, labels=labels))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(output.loss).backward()
        self.method.before_optimizer_step(self.epoch)
        if self.config.optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in self.method.parameters() if p.requires_grad], self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.config.optim.scheduler == "warmup_cosine":
            self.scheduler.step()  # per step
        self.method.on_step_end(self.global_step, self.config.train.epochs * self.steps_per_epoch)
        return float(output.loss.detach()), output.metrics

    def _should_stop(self) -> bool:
        train_cfg = self.config.train
        if train_cfg.max_steps is not None and self.global_step >= train_cfg.max_steps:
            return True
        if train_cfg.max_minutes is not None:
            elapsed = torch.tensor(float(time.monotonic() - self.started))
            # Every rank must agree to stop at the same step.
            elapsed = distributed.all_reduce_sum(elapsed) / distributed.world_size()
            return float(elapsed) >= 60 * train_cfg.max_minutes
        return False

    def _end_epoch(self, mean_loss: float) -> None:
        finished = self.epoch + 1  # 1-based number of the epoch just finished
        metrics = {"loss": mean_loss, "lr": self.optimizer.param_groups[0]["lr"]}
        if self.ssps is not None:
            metrics.update(self.ssps.epoch_diagnostics())
        if self.config.optim.scheduler == "step":
            self.scheduler.step()  # per epoch
        self.epoch, self.step_in_epoch, self.epoch_loss_sum = finished, 0, 0.0
        if distributed.is_main():
            save_weights(self.method.exported_encoder(), self.run_dir / f"checkpoints/epoch_{finished:04d}.safetensors")
            self._prune_epoch_weights()
        validation = self.config.eval.validation
        every = self.config.eval.validate_every_epochs
        if validation is not None and every > 0 and finished % every == 0:
            result = evaluate_trials(self.method.exported_encoder(), validation.path, validation.audio_root, self.device,
                                     self.config.model.frontend.sample_rate)
            metrics.update({f"validation/{k}": v for k, v in result.items() if k in ("eer", "min_dcf")})
        self.log.scalars("epoch", finished, self.global_step, metrics)
        self.log.info(f"epoch {finished}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        self._save_state()

    # ---- checkpoints -------------------------------------------------------------------
    def _save_state(self) -> None:
        """Everything needed to continue identically: written atomically by rank 0."""
        if distributed.is_main():
            state = {
                "method": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step,
                "epoch_loss_sum": self.epoch_loss_sum,
                "rng": torch.get_rng_state(),
            }
            path = self.run_dir / LAST_CHECKPOINT
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".last.", suffix=".tmp")
            os.close(fd)
            try:
                torch.save(state, tmp)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        distributed.barrier()

    def _restore(self) -> None:
        own = self.run_dir / LAST_CHECKPOINT
        source = own if own.is_file() else None
        if source is None and self.config.train.init_from:
            source = Path(self.config.train.init_from) / LAST_CHECKPOINT
            if not source.is_file():
                raise ConfigError(f"train.init_from: {source} does not exist")
        if source is None:
            return
        state = torch.load(source, map_location=self.device, weights_only=True)
        if source == own:
            self.method.load_state_dict(state["method"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"].cpu())
            self.epoch, self.step_in_epoch, self.global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
            self.epoch_loss_sum = state["epoch_loss_sum"]
            self.log.info(f"resumed from {source} at epoch {self.epoch + 1}, step {self.global_step}")
            self.log.truncate_after(self.global_step)
        else:
            # Another run (e.g. 100 epochs of plain SSL): its weights, optimiser and schedule;
            # SSPS state that run did not have starts empty.
            weights = state["method"]
            if self.ssps is None:  # the source filled SSPS queues this run does not use
                weights = {key: value for key, value in weights.items() if not key.startswith("ssps.")}
            missing, unexpected = self.method.load_state_dict(weights, strict=False)
            if unexpected or any(not key.startswith("ssps.") for key in missing):
                raise ConfigError(f"train.init_from: {source} was trained with another method or model "
                                  f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.epoch, self.global_step = state["epoch"], state["global_step"]
            if self.epoch >= self.config.train.epochs:
                raise ConfigError(
                    f"train.epochs={self.config.train.epochs} leaves nothing to train: {source} has completed "
                    f"{self.epoch} epoch(s) and init_from continues its epoch count. Set train.epochs above {self.epoch} "
                    f"(e.g. {self.epoch + 2} for two more epochs)"
                )
            self.log.info(f"initialised from {source} (epoch {self.epoch}, step {self.global_step})")

    def _epoch_weight_files(self) -> list[Path]:
        return sorted((self.run_dir / "checkpoints").glob("epoch_*.safetensors"))

    def _prune_epoch_weights(self) -> None:
        for old in self._epoch_weight_files()[: -self.config.checkpoint.average_last]:
            old.unlink()

    # ---- the end -----------------------------------------------------------------------
    def _finish(self) -> None:
        """Average the last epochs into encoder.safetensors, evaluate, write metrics.json."""
        sources = [str(p) for p in self._epoch_weight_files()[-self.config.checkpoint.average_last :]]
        if self.step_in_epoch > 0 or not sources:
            # Stopped mid-epoch (--max-steps / --max-minutes): the current weights are the newest snapshot.
            current = self.run_dir / "checkpoints/current.safetensors"
            if distributed.is_main():
                save_weights(self.method.exported_encoder(), current)
            sources = (sources + [str(current)])[-self.config.checkpoint.average_last :]
        distributed.barrier()
        if distributed.is_main():
            save_weights(average_weight_files(sources), self.run_dir / ENCODER_FILE)
        distributed.barrier()
        # Evaluate the averaged weights, not the last ones.
        encoder = SpeakerEncoder(self.config.model).to(self.device)
        encoder.load_state_dict(average_weight_files(sources))
        results = {}
        for trials in self.config.eval.trials:
            name = trials.name or Path(trials.path).stem
            results[name] = evaluate_trials(encoder, trials.path, trials.audio_root, self.device,
                                            self.config.model.frontend.sample_rate)
            self.log.info(f"{name}: EER {results[name]['eer']:.2f} %, minDCF {results[name]['min_dcf']:.4f}")
            self.log.scalars("eval", self.epoch, self.global_step, {f"{name}/{k}": results[name][k] for k in ("eer", "min_dcf")})
        summary = {
            "evaluation": results,
            "averaged_checkpoints": [Path(s).name for s in sources],
            "epochs_completed": self.epoch,
            "global_step": self.global_step,
            "stopped_early": self.stopped_early,
            "method": self.config.method.name,
            "ssps": self.config.ssps.enabled,
        }
        if distributed.is_main():
            _write_atomically(self.run_dir / METRICS_FILE, json.dumps(summary, indent=2))

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def build_optimizer(optim, method: Method, total_steps: int, steps_per_epoch: int):
    """(optimiser, scheduler) from the ``optim:`` section.

    ``scheduler: step`` (the paper's Adam recipe): lr x lr_decay every lr_decay_every_epochs
    epochs, stepped at epoch ends. ``scheduler: warmup_cosine`` (its DINO recipe): lr rises
    linearly from 0 over warmup_epochs, then follows a cosine down to min_lr at the last
    step; stepped after every optimiser step.
    """
    trainable = [p for p in method.parameters() if p.requires_grad]
    if optim.optimizer == "adam":
        optimizer = torch.optim.Adam(trainable, lr=optim.lr, weight_decay=optim.weight_decay)
    elif optim.optimizer == "sgd":
        optimizer = torch.optim.SGD(trainable, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    else:
        raise ConfigError(f"optim.optimizer must be adam or sgd, got {optim.optimizer!r}")
    if optim.scheduler == "step":
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=optim.lr_decay_every_epochs, gamma=optim.lr_decay)
    if optim.scheduler != "warmup_cosine":
        raise ConfigError(f"optim.scheduler must be step or warmup_cosine, got {optim.scheduler!r}")
    warmup = optim.warmup_epochs * steps_per_epoch
    floor = optim.min_lr / optim.lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return floor + (1 - floor) * (1 + math.cos(math.pi * min(progress, 1.0))) / 2

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class EpochBatches(Sampler[list[int]]):
    """This rank's batches of one epoch: a permutation seeded by (seed, epoch), cut into
    global batches (the remainder is dropped), each split into contiguous per-rank slices.
    ``start`` skips the batches a resumed run has already trained on."""

    def __init__(self, num_samples: int, batch_per_rank: int, seed: int, epoch: int, start: int = 0):
        self.num_samples, self.batch_per_rank = num_samples, batch_per_rank
        self.seed, self.epoch, self.start = seed, epoch, start
        self.global_batch = batch_per_rank * distributed.world_size()
        self.steps = num_samples // self.global_batch

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        offset = distributed.rank() * self.batch_per_rank
        for step in range(self.start, self.steps):
            first = step * self.global_batch + offset
            yield order[first : first + self.batch_per_rank].tolist()


class RunLogger:
    """Text log, CSV of every value (logs/metrics.csv), TensorBoard when installed."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool = True):
        self.enabled = enabled
        self.csv_path = run_dir / "logs/metrics.csv"
        self.writer = None
        if not enabled:
            return
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.csv_path.exists():
            self.csv_path.write_text("kind,epoch,step,name,value\n")
        handler = logging.FileHandler(run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        self._handler = handler
        if not tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "logs/tensorboard"))
        except ImportError:
            logger.info("tensorboard is not installed: logging to logs/metrics.csv only")

    def info(self, message: str) -> None:
        if self.enabled:
            logger.info(message)

    def scalars(self, kind: str, epoch: int, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.csv_path.open("a") as csv:
            for name, value in values.items():
                csv.write(f"{kind},{epoch},{step},{name},{float(value):.8g}\n")
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{kind}/{name}", float(value), step)

    def truncate_after(self, step: int) -> None:
        """After a resume: drop step rows the crashed run logged past its last checkpoint."""
        if not self.enabled or not self.csv_path.exists():
            return
        header, *rows = self.csv_path.read_text().splitlines()
        kept = [row for row in rows if int(row.split(",")[2]) <= step]
        _write_atomically(self.csv_path, "\n".join([header, *kept]) + "\n")

    def progress(self, total: int, initial: int, description: str, enabled: bool = True):
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=description, disable=not (self.enabled and enabled),
                    dynamic_ncols=True, leave=False)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.enabled:
            logger.removeHandler(self._handler)
            self._handler.close()


def _device_type(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"train.device must be auto, cpu or cuda, got {device!r}")
    return device


def cpu_supports_bf16() -> bool:
    """Native bf16 arithmetic (AVX512-BF16 or AMX): where bf16 autocast is fast on CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"train.precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else None


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
