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
