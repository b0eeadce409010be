"""The one exception family of ssps: every error a user can cause is one of these."""


class SSPSError(Exception):
    """Base class of every error ssps raises on purpose."""


class AudioError(SSPSError, ValueError):
    """The audio could not be used: unreadable, empty, too short, non-finite, ...

    ``code`` is a short stable machine-readable reason (``ssps.audio.ERROR_CODES``), which
    the REST server returns as its error code.
    """

    def __init__(self, message: str, code: str = "bad_input"):
        super().__init__(message)
        self.code = code


class ModelError(SSPSError):
    """The model could not be found, loaded, trusted or run."""


class ConfigError(SSPSError, ValueError):
    """A training or export configuration is invalid."""
