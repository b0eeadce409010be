"""Training data: the manifest of utterances, the SSL dataset, and audio reading.

- `manifest`: `build_manifest(root)` scans a VoxCeleb-style tree, `read_manifest(csv)` reads
  a hand-written or generated CSV; both return a list of `Utterance`.
- `dataset`: `SSLDataset` yields random crops ("views") of each utterance for SSL,
  `EvalDataset` yields full-length utterances for evaluation.
- `audio`: reading (a crop of) a file as 16 kHz float32 mono.

Speaker and recording labels are optional and stay attributes of the dataset: they are
never part of a batch, so no self-supervised loss can see them.
"""

from ssps.errors import ConfigError


class DataError(ConfigError):
    """The training data cannot be used: too many bad files, an unsupported format, ..."""


# Imported after DataError: the submodules raise it.
from ssps.train.data.audio import AUDIO_SUFFIXES, audio_duration, read_audio, read_random_crop  # noqa: E402
from ssps.train.data.manifest import (  # noqa: E402
    Utterance,
    build_manifest,
    read_manifest,
    write_manifest,
)

# The datasets need torch; the manifest does not (`ssps data manifest` runs without the
# [train] extra), so they are imported on first use.
_TORCH_NAMES = ("EvalDataset", "SSLDataset", "collate", "collate_eval")


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        from ssps.train.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AUDIO_SUFFIXES",
    "DataError",
    "EvalDataset",
    "SSLDataset",
    "Utterance",
    "audio_duration",
    "build_manifest",
    "collate",
    "collate_eval",
    "read_audio",
    "read_manifest",
    "read_random_crop",
    "write_manifest",
]
