"""transformers backend: the engine owning its KV cache (:mod:`.engine`), the backend (:mod:`.backend`)
and the shared-prefix sweep (:mod:`.sweep`).

    from s1kit.backends.hf import HFBackend
    backend = HFBackend.from_pretrained("simplescaling/s1.1-32B", revision="<commit>")
"""

from s1kit.backends.hf.backend import HFBackend, create
from s1kit.backends.hf.engine import (DecodeLoop, Prefilled, cache_keyword, default_device, default_dtype,
                                      left_pad_batch)
from s1kit.backends.sampling import sample_row as _sample_row

__all__ = ["DecodeLoop", "HFBackend", "Prefilled", "cache_keyword", "create", "default_device", "default_dtype",
           "left_pad_batch", "_sample_row"]
