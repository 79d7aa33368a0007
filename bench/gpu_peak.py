"""What a pair's training could reach: the GPU's bf16 dense peak, and the FLOPs of a pair step.

The peaks are the vendors' datasheet numbers for dense bf16 tensor-core math (without the 2:4
sparsity that doubles the headline figure), keyed on substrings of torch's device name.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from trainables.models import build_model

# First match wins, so specific names come before the names they contain ("A100" contains "A10",
# "L40S" contains "L4"). torch names an SXM H100 "NVIDIA H100 80GB HBM3".
BF16_DENSE_TFLOPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H100", "PCIe"), 756.0),
    (("H100", "NVL"), 835.0),
    (("GH200",), 989.0),
    (("H200",), 989.0),
    (("H100",), 989.0),
    (("B200",), 2250.0),
    (("A100",), 312.0),
    (("L40S",), 362.0),
    (("L40",), 181.0),
    (("L4",), 121.0),
    (("A10G",), 70.0),
    (("A10",), 125.0),
    (("RTX 4090",), 165.0),
)


def bf16_peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of the named GPU in TFLOP/s; None where the name is not in the table."""
    for keys, peak in BF16_DENSE_TFLOPS:
        if all(k in device_name for k in keys):
            return peak
    return None


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def train_flops_per_image(arch: str, width: float, image_shape=(3, 32, 32), num_classes: int = 2,
                          batch: int = 4) -> float:
    """FLOPs of one network's training step per image: forward, input and weight gradients of every
    matmul and convolution (torch's FLOP counter; norms and activations are not counted). Counted
    on the meta device, so no memory or time is spent; the count is linear in the batch."""
    with torch.device("meta"):
        model = build_model(arch, num_classes, width, image_shape)
        x = torch.empty(batch, *image_shape)
        y = torch.zeros(batch, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch
