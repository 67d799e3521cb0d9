"""Size presets of the two models, chosen by name (`tokenizer.size`, `dynamics.size`).

Kept apart from the networks (no torch here), so params validation knows the names
without importing a model. `tiny` is for CPU and CI; the others for GPUs.
"""

from __future__ import annotations

TOKENIZER_SIZES: dict[str, dict[str, int]] = {
    # name: transformer width, heads, encoder/decoder depth
    "tiny": {"dim": 128, "heads": 4, "enc_depth": 3, "dec_depth": 3},
    "small": {"dim": 256, "heads": 8, "enc_depth": 6, "dec_depth": 6},
    "base": {"dim": 512, "heads": 8, "enc_depth": 12, "dec_depth": 12},
    "large": {"dim": 768, "heads": 12, "enc_depth": 16, "dec_depth": 16},
}

DYNAMICS_SIZES: dict[str, dict[str, int]] = {
    # name: transformer width, query heads, key/value heads, depth
    # tiny is 2 deep: at the default budget it matches 4 deep at half the time per step
    # (docs/results.md, "The default budget: a 2-deep tiny dynamics")
    "tiny": {"dim": 128, "heads": 4, "kv_heads": 2, "depth": 2},
    "small": {"dim": 256, "heads": 8, "kv_heads": 4, "depth": 8},
    "base": {"dim": 512, "heads": 8, "kv_heads": 4, "depth": 16},
    "large": {"dim": 1024, "heads": 16, "kv_heads": 4, "depth": 24},
}
