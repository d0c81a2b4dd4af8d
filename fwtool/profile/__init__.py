"""Per-layer profiling on the target (``fwtool profile``): the profile app's TFLM profiler events turned into time,
cycles, MACs, MACs per cycle, kernel and share per layer (layers.py), run by flow.py, compared by compare.py."""
from fwtool.profile.flow import ProfileOptions, profile_one, run
from fwtool.profile.layers import Capture, layer_table, parse_lines, tolerance_us

__all__ = ["ProfileOptions", "profile_one", "run", "Capture", "layer_table", "parse_lines", "tolerance_us"]
