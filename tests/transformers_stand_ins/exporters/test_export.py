class ExportTesterMixin:
    """transformers' torch.export tests (tests/exporters/) are not in its sdist: JAKET runs none of them."""
