"""Run a script with Accelerate's FSDP on CPU processes: `accelerate launch --use_fsdp ... fsdp_on_cpu.py SCRIPT ARGS`.

Accelerate turns `--use_fsdp` into plain multi-CPU DDP when it finds no GPU, although torch's FSDP2
(`fully_shard`) runs on CPUs with gloo. This opens that one gate, so that Accelerate's own FSDP2 preparation,
`get_state_dict` and gathering run as they would on GPUs; nothing else is changed.
"""

import runpy
import sys

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType

_original_init = AcceleratorState.__init__


def _init_with_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
    _original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        # both states: every later AcceleratorState() copies PartialState's fields over its own
        PartialState._shared_state["distributed_type"] = self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin


AcceleratorState.__init__ = _init_with_fsdp_on_cpu

if __name__ == "__main__":
    script, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
