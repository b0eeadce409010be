"""The supervised baselines: they see speaker labels (``needs_labels = True``), never SSPS.

- ``aam_softmax``: classification with the additive angular margin softmax (s = 30,
  m = 0.2; paper section IV-C), one 2 s crop per utterance.
- ``supcon``: supervised contrastive loss (Khosla et al.) on batches of P speakers x K
  utterances, one crop each, negatives from the global batch.
- ``chns``: ``supcon`` with clustering-based hard negative sampling (seeds/000, abstract
  only; our reading is written down in ``docs/methods.md``): at every epoch start the
  speaker centroids of the current embeddings are clustered with k-means, and a
  ``hard_fraction`` of each batch's speakers come from one cluster
  (``ssps/train/data/chns_sampler.py``).

"Supervised positive sampling" (the positive of an SSL method drawn from another recording
of the same speaker) is not a method: it is ``data.positive: supervised`` with any SSL method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ssps.errors import ConfigError
from ssps.train import distributed
from ssps.train.data.audio import read_random_crop
from ssps.train.data.chns_sampler import CHNSBatches
from ssps.train.distributed import all_gather, all_gather_with_grad
from ssps.train.losses import AAMSoftmax, supervised_contrastive
from ssps.train.methods.base import Method, StepOutput, TrainBatch, register_method
from ssps.train.positive_sampling.kmeans import spherical_kmeans


class SupervisedMethod(Method):
    needs_labels = True
    num_views = 1

    def __init__(self, config, encoder, ssps=None, *, num_speakers: int):
        if ssps is not None:
            raise ConfigError(f"method {self.name!r} is supervised: SSPS does not apply (set ssps.enabled=false)")
        super().__init__(config, encoder, ssps)
        self.num_speakers = num_speakers


@dataclass
class AAMSoftmaxConfig:
    scale: float = 30.0  # s
    margin: float = 0.2  # m


@register_method
class AAMSoftmaxClassifier(SupervisedMethod):
    name = "aam_softmax"
    Config = AAMSoftmaxConfig

    def __init__(self, config: AAMSoftmaxConfig, encoder, ssps=None, *, num_speakers: int):
        super().__init__(config, encoder, ssps, num_speakers=num_speakers)
        self.classifier = AAMSoftmax(encoder.embedding_dim, num_speakers, config.scale, config.margin)

    def forward(self, batch: TrainBatch) -> StepOutput:
        return StepOutput(self.classifier(self.encoder(batch.views[0]), batch.labels))


@dataclass
class SupConConfig:
    temperature: float = 0.1
    utterances_per_speaker: int = 2  # K; P = train.batch_size / K speakers per batch
    hard_fraction: float = 0.0  # share of each batch's speakers taken from one cluster (CHNS)


@register_method
class SupCon(SupervisedMethod):
    name = "supcon"
    Config = SupConConfig

    def forward(self, batch: TrainBatch) -> StepOutput:
        z = self.encoder(batch.views[0])
        loss = supervised_contrastive(all_gather_with_grad(z), all_gather(batch.labels), self.config.temperature)
        return StepOutput(loss)

    def speaker_clusters(self, dataset, seed: int, epoch: int, start: int) -> np.ndarray | None:
        return None  # plain SupCon: random P x K batches

    def epoch_batches(self, dataset, batch_per_rank: int, seed: int, epoch: int, start: int):
        steps = len(dataset) // (batch_per_rank * distributed.world_size())
        return CHNSBatches(
            dataset.speaker_ids, self.config.utterances_per_speaker, batch_per_rank, steps, seed, epoch, start,
            speaker_clusters=self.speaker_clusters(dataset, seed, epoch, start),
            hard_fraction=self.config.hard_fraction,
        )


@dataclass
class CHNSConfig(SupConConfig):
    hard_fraction: float = 0.5
    num_clusters: int = 100  # k-means clusters of speaker centroids
    kmeans_iterations: int = 10
    centroid_utterances: int = 4  # per speaker, for its centroid
    centroid_seconds: float = 4.0  # crop encoded per utterance


@register_method
class CHNS(SupCon):
    name = "chns"
    Config = CHNSConfig

    def __init__(self, config: CHNSConfig, encoder, ssps=None, *, num_speakers: int):
        super().__init__(config, encoder, ssps, num_speakers=num_speakers)
        if config.num_clusters > num_speakers:
            raise ConfigError(f"method.num_clusters ({config.num_clusters}) exceeds the number of speakers ({num_speakers})")
        # The epoch's clustering, checkpointed: a run resumed mid-epoch composes the same batches.
        self.register_buffer("clusters", torch.full((num_speakers,), -1, dtype=torch.long))
        self.register_buffer("clusters_epoch", torch.tensor(-1))

    def speaker_clusters(self, dataset, seed: int, epoch: int, start: int) -> np.ndarray:
        if not (start > 0 and int(self.clusters_epoch) == epoch):
            centroids = self.speaker_centroids(dataset, seed, epoch)
            clustering = spherical_kmeans(centroids, self.config.num_clusters, self.config.kmeans_iterations,
                                          seed=seed * 1_000_003 + epoch)
            self.clusters.copy_(clustering.assignments)
            self.clusters_epoch.fill_(epoch)
        return self.clusters.cpu().numpy()

    @torch.no_grad()
    def speaker_centroids(self, dataset, seed: int, epoch: int) -> torch.Tensor:
        """Mean L2-normalised embedding of up to ``centroid_utterances`` utterances per speaker:
        un-augmented crops, the encoder in eval mode; each rank encodes its share."""
        rng = np.random.default_rng([seed, epoch, 7])
        order = np.argsort(dataset.speaker_ids, kind="stable")
        utterances_of = np.split(order, np.flatnonzero(np.diff(dataset.speaker_ids[order])) + 1)
        chosen = np.concatenate([rng.permutation(own)[: self.config.centroid_utterances] for own in utterances_of])
        device = self.clusters.device
        mine = chosen[distributed.shard(len(chosen))]
        samples = round(self.config.centroid_seconds * dataset.sample_rate)
        was_training = self.encoder.training
        self.encoder.eval()
        embeddings = []
        for start in range(0, len(mine), 32):
            crops = [read_random_crop(dataset.utterances[i].path, samples, np.random.default_rng([seed, epoch, int(i)]),
                                      dataset.sample_rate, duration=dataset.utterances[i].duration)
                     for i in mine[start : start + 32]]
            embeddings.append(F.normalize(self.encoder(torch.from_numpy(np.stack(crops)).to(device)).float(), dim=-1))
        self.encoder.train(was_training)
        local = torch.cat(embeddings) if embeddings else torch.zeros(0, self.encoder.embedding_dim, device=device)
        everyone = distributed.gather_shards(local, len(chosen))
        speakers = torch.as_tensor(dataset.speaker_ids[chosen], device=device)
        sums = torch.zeros(self.num_speakers, everyone.shape[1], device=device).index_add_(0, speakers, everyone)
        return F.normalize(sums, dim=-1)
