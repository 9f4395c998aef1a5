"""Test-only launcher: run `python -m s1kit.train` with accelerate's FSDP enabled on CPU processes.

    torchrun --standalone --nproc_per_node 2 tests/train/fsdp_cpu_shim.py --config ... (FSDP_* env from accelerate)

accelerate (1.15) picks MULTI_CPU for CPU processes and never upgrades that to FSDP, so a FSDP
launch config on CPU silently runs DDP. This shim makes exactly that one upgrade (what accelerate
does for GPU processes); everything else — the FSDP2 plugin built from the FSDP_* environment,
wrapping, sharded checkpoints, the full-state-dict final save — is the library code s1kit runs on GPUs.
Never used outside tests.
"""

import runpy
import sys

from accelerate import state
from accelerate.utils import DistributedType

_init = state.AcceleratorState.__init__


def _init_with_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
    _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


state.AcceleratorState.__init__ = _init_with_fsdp_on_cpu
sys.argv = ["s1kit.train", *sys.argv[1:]]
runpy.run_module("s1kit.train", run_name="__main__")
