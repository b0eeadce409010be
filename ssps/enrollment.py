"""Enrolled speakers: a name -> voiceprint store that can be saved to and loaded from ``.npz``.

A voiceprint is the mean of a speaker's L2-normalised utterance embeddings, normalised
again. The store keeps the running sum and count, so enrolling more audio later refines it.
Embeddings from different models cannot be compared, so the store remembers which model
made it and refuses to mix.

    >>> import numpy as np
    >>> store = Enrollment(model_id="demo@0", dim=3)
    >>> store.add("ada", np.array([[1.0, 0.0, 0.0]]))
    >>> store.add("bob", np.array([[0.0, 1.0, 0.0]]))
    >>> [(m.name, round(m.score, 2)) for m in store.rank(np.array([0.8, 0.6, 0.0]), top_k=2)]
    [('ada', 0.8), ('bob', 0.6)]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssps.errors import SSPSError


class EnrollmentError(SSPSError, ValueError):
    """The enrolment store is empty, unreadable, or belongs to another model."""


@dataclass(frozen=True)
class Match:
    name: str
    score: float  # cosine between the query embedding and the speaker's voiceprint


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise along the last axis (zero vectors stay zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Enrollment:
    """Voiceprints of named speakers, for one model."""

    def __init__(self, model_id: str, dim: int):
        self.model_id = model_id
        self.dim = dim
        self._sums: dict[str, np.ndarray] = {}  # sum of normalised embeddings per speaker
        self._counts: dict[str, int] = {}

    @property
    def names(self) -> list[str]:
        return list(self._sums)

    def __len__(self) -> int:
        return len(self._sums)

    def __contains__(self, name: object) -> bool:
        return name in self._sums

    def add(self, name: str, embeddings: np.ndarray) -> None:
        """Add utterance embeddings [n, dim] (or one [dim]) to speaker ``name``."""
        if not isinstance(name, str) or not name.strip():
            raise EnrollmentError("a speaker name must be a non-empty string")
        embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        if embeddings.shape[0] == 0 or embeddings.shape[1] != self.dim:
            raise EnrollmentError(f"expected embeddings of shape [n >= 1, {self.dim}], got {embeddings.shape}")
        self._sums[name] = self._sums.get(name, np.zeros(self.dim)) + normalize(embeddings).sum(axis=0)
        self._counts[name] = self._counts.get(name, 0) + len(embeddings)

    def remove(self, name: str) -> None:
        if name not in self:
            raise EnrollmentError(f"{name!r} is not enrolled")
        del self._sums[name], self._counts[name]

    def voiceprint(self, name: str) -> np.ndarray:
        if name not in self:
            raise EnrollmentError(f"{name!r} is not enrolled")
        return normalize(self._sums[name]).astype(np.float32)

    def count(self, name: str) -> int:
        return self._counts[name]

    def rank(self, embedding: np.ndarray, top_k: int = 1) -> list[Match]:
        """The ``top_k`` enrolled speakers closest to ``embedding``, best first."""
        if not self._sums:
            raise EnrollmentError("no speaker is enrolled: enroll some first, or load a saved .npz")
        if top_k < 1:
            raise EnrollmentError(f"top_k must be >= 1, got {top_k}")
        names = self.names
        voiceprints = normalize(np.stack([self._sums[n] for n in names]))
        scores = voiceprints @ normalize(np.asarray(embedding, dtype=np.float64))
        best = np.argsort(-scores, kind="stable")[:top_k]
        return [Match(names[i], float(scores[i])) for i in best]

    def check_model(self, model_id: str, dim: int) -> None:
        if self.model_id != model_id or self.dim != dim:
            raise EnrollmentError(
                f"these enrolments were made with model {self.model_id} (dim {self.dim}), not {model_id} "
                f"(dim {dim}): embeddings of different models cannot be compared; enroll again with this model"
            )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the store to ``path`` (.npz; the suffix is added when missing)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")  # np.savez would add it silently anyway
        names = self.names
        np.savez(
            path,
            names=np.array(names, dtype=str),
            sums=np.stack([self._sums[n] for n in names]) if names else np.zeros((0, self.dim)),
            counts=np.array([self._counts[n] for n in names], dtype=np.int64),
            model_id=np.array(self.model_id),
            dim=np.array(self.dim),
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Enrollment:
        try:
            with np.load(path, allow_pickle=False) as data:
                store = cls(str(data["model_id"]), int(data["dim"]))
                for name, total, count in zip(data["names"], data["sums"], data["counts"]):
                    store._sums[str(name)] = total.astype(np.float64)
                    store._counts[str(name)] = int(count)
        except FileNotFoundError as err:
            raise EnrollmentError(f"{path} does not exist: enroll speakers first (ssps enroll)") from err
        except (OSError, KeyError, ValueError) as err:
            raise EnrollmentError(f"{path} is not an ssps enrolment file: {err}") from err
        return store
