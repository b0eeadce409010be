"""What SSPS logs per epoch (paper section IV-D), from labels it never samples with.

- coverage: share of anchors whose positive was replaced by a pseudo-positive (the rest
  fell back to the ordinary positive: no sample, or the sample not in Q').
- speaker accuracy: share of pseudo-positives from the anchor's speaker.
- recording accuracy: share of pseudo-positives from the anchor's recording (SSPS wants it
  low: positives from other recordings carry other channels).
- same speaker, other recording: the useful pseudo-positives (see FINDINGS.md).
- NMI of the k-means clusters vs speakers and vs recordings.
Unknown labels (-1) are left out of the accuracies.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np
import torch


@dataclass
class SamplingCounts:
    anchors: float = 0
    replaced: float = 0
    speaker_known: float = 0
    same_speaker: float = 0
    recording_known: float = 0
    same_recording: float = 0
    both_known: float = 0
    same_speaker_other_recording: float = 0

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor(astuple(self), dtype=torch.float64)

    @classmethod
    def from_tensor(cls, values: torch.Tensor) -> "SamplingCounts":
        return cls(*values.tolist())

    def add(self, anchors, positives, replaced, speaker_ids, recording_ids, compare_samples: bool = True) -> None:
        self.anchors += len(anchors)
        self.replaced += int(replaced.sum())
        if not compare_samples:  # centroid positives are no sample: no label to compare
            return
        anchors, positives = anchors[replaced], positives[replaced]
        same_speaker = speaker_known = None
        if speaker_ids is not None:
            a, p = speaker_ids[anchors], speaker_ids[positives]
            speaker_known = (a >= 0) & (p >= 0)
            same_speaker = speaker_known & (a == p)
            self.speaker_known += int(speaker_known.sum())
            self.same_speaker += int(same_speaker.sum())
        if recording_ids is not None:
            a, p = recording_ids[anchors], recording_ids[positives]
            recording_known = (a >= 0) & (p >= 0)
            self.recording_known += int(recording_known.sum())
            self.same_recording += int((recording_known & (a == p)).sum())
            if same_speaker is not None:
                both = speaker_known & recording_known
                self.both_known += int(both.sum())
                self.same_speaker_other_recording += int((both & same_speaker & (a != p)).sum())

    def rates(self) -> dict[str, float]:
        ratio = lambda part, whole: part / whole if whole else float("nan")
        rates = {"ssps/coverage": ratio(self.replaced, self.anchors)}
        if self.speaker_known:
            rates["ssps/speaker_accuracy"] = ratio(self.same_speaker, self.speaker_known)
        if self.recording_known:
            rates["ssps/recording_accuracy"] = ratio(self.same_recording, self.recording_known)
        if self.both_known:
            rates["ssps/same_speaker_other_recording"] = ratio(self.same_speaker_other_recording, self.both_known)
        return rates



def clustering_purity(assignments: torch.Tensor, speaker_ids, recording_ids, num_clusters: int) -> dict[str, float]:
    """NMI between the k-means clusters and the speaker / recording labels, where known."""
    from sklearn.metrics import normalized_mutual_info_score

    clusters = assignments.cpu().numpy()
    sizes = np.bincount(clusters[clusters >= 0], minlength=num_clusters)
    metrics = {
        "ssps/clustered_samples": float((clusters >= 0).sum()),
        "ssps/empty_clusters": float((sizes == 0).sum()),
    }
    for name, labels in (("speaker", speaker_ids), ("recording", recording_ids)):
        if labels is None:
            continue
        labels = labels.numpy()
        known = (clusters >= 0) & (labels >= 0)
        if known.sum() > 1:
            metrics[f"ssps/nmi_{name}"] = float(normalized_mutual_info_score(labels[known], clusters[known]))
    return metrics
