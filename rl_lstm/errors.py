"""The errors rl_lstm raises for problems a user can fix; each message says what was wrong and what is allowed."""


class RLLSTMError(Exception):
    """Base class of every error rl_lstm raises on purpose."""


class ConfigError(RLLSTMError, ValueError):
    """A bad name, key, value or combination in a config, a command line or an API call."""


class CheckpointError(RLLSTMError):
    """A checkpoint that cannot be loaded: missing, corrupted, truncated, of another version or agent."""


class NumericalError(RLLSTMError):
    """A NaN or inf appeared in a loss, gradient or parameter; the update was stopped before it was applied."""


class EnvStepError(RLLSTMError):
    """The environment raised in ``reset`` or ``step``; the message names the env and the env step."""
