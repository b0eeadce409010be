"""ssps: speaker verification with ONNX Runtime (torch-free).

    >>> import ssps
    >>> result = ssps.verify("a.wav", "b.wav")            # doctest: +SKIP
    >>> result.same_speaker, result.score                  # doctest: +SKIP
    >>> model = ssps.load_model("hf://org/ssps-ecapa")     # doctest: +SKIP
    >>> model.embed("a.wav").shape                         # doctest: +SKIP

Nothing imported here pulls in torch: the training recipe lives in ``ssps.train``.
"""

__version__ = "0.1.0"

from ssps.audio import NarrowBandWarning, load_audio  # noqa: E402
from ssps.enrollment import Enrollment, EnrollmentError, Match  # noqa: E402
from ssps.errors import AudioError, ConfigError, ModelError, SSPSError  # noqa: E402
from ssps.inference import (  # noqa: E402
    Identification,
    SpeakerModel,
    UntrainedModelWarning,
    VerificationResult,
    load_model,
    verify,
)

__all__ = [
    "AudioError",
    "ConfigError",
    "Enrollment",
    "EnrollmentError",
    "Identification",
    "Match",
    "ModelError",
    "NarrowBandWarning",
    "SSPSError",
    "SpeakerModel",
    "UntrainedModelWarning",
    "VerificationResult",
    "__version__",
    "load_audio",
    "load_model",
    "verify",
]
