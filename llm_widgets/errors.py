"""Errors a user can act on. Each says what went wrong and what to do; none loses the user's state."""


class LLMWidgetsError(ValueError):
    """Base class: bad input or a model that cannot do what was asked."""


class EmptyInputError(LLMWidgetsError):
    pass


class InputTooLongError(LLMWidgetsError):
    pass


class ModelNotFoundError(LLMWidgetsError):
    pass


class AttentionUnavailableError(LLMWidgetsError):
    pass


class NonFiniteError(LLMWidgetsError):
    pass


class OutOfMemoryError(LLMWidgetsError, MemoryError):
    pass


class DoesNotApplyError(LLMWidgetsError):
    """A view or method that does not apply to this model (e.g. the logit lens on a model with no
    language-model head); the message says why. Every view raises the same message for the same model."""


class UnsupportedModelError(LLMWidgetsError):
    """The adapter could not resolve the model's layout; the message says what was found and how to
    pass `llm_widgets.Layout(...)`."""


class BackendUnsupportedError(DoesNotApplyError):
    """What a session's backend (nnsight: llm_widgets.backends) cannot do (yet, or remotely); the
    message says why and what it would cost."""
