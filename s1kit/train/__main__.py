"""`python -m s1kit.train ...` = `s1kit train ...` (what torchrun / accelerate launch run).

    accelerate launch --config_file recipes/accelerate/fsdp-qwen2.yaml -m s1kit.train --config recipes/s1-32b.yaml
"""

from s1kit.train.command import main

raise SystemExit(main())
