class GenerationTesterMixin:
    """transformers' generation tests (tests/generation/) are not in its sdist; JAKET is an encoder and never
    generates, which ModelTesterMixin checks through `can_generate()`."""
