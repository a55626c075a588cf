"""The nonlinearities a config may name (`hidden_act`, `km_hidden_act`), built from torch alone: the code saved beside
a model's weights then needs nothing but transformers' public API."""

from torch import nn

ACTIVATIONS = {
    "gelu": nn.GELU,
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


def get_activation(name: str, field: str = "hidden_act") -> nn.Module:
    """A new module for the activation `name`; `field` names the config attribute it came from, for the error."""
    if name not in ACTIVATIONS:
        raise ValueError(f"JaketConfig.{field} is {name!r}; supported activations: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
