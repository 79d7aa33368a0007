"""Quick agreement scores of a few discovered tasks during discovery, with a short AS protocol."""
from __future__ import annotations

import torch

from ..agreement_score import AgreementRun
from ..data import DeviceImages, make_split
from ..protocol import Protocol
from ..labels import TaskLabels
from .encoder import TaskEncoder, encoder_labels


def quick_protocol(config) -> Protocol:
    """The short AS protocol of a DiscoveryConfig: the unrolled networks' architecture, paper
    optimiser and batch, few epochs, subsets; no torch.compile, whose start-up cost would
    dominate a few epochs."""
    return Protocol(arch=config.inner_arch, width=config.inner_width, epochs=config.quick_eval_epochs,
                    precision="bf16" if config.precision == "bf16" else "fp32", compile="off",
                    holdout=config.holdout, split_seed=config.split_seed,
                    train_subset=config.quick_eval_train_subset, holdout_subset=config.quick_eval_holdout_subset,
                    subset_seed=config.subset_seed)


def quick_agreement(encoder: TaskEncoder, train_images: DeviceImages, test_images: DeviceImages,
                    config, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """`eval/agreement_task_<i>` for the first quick_eval_tasks tasks, and their mean. The encoder
    must be calibrated (calibrate_bn); pair seed 0 for every task."""
    protocol = quick_protocol(config)
    split = make_split(len(train_images), len(test_images), protocol.holdout, protocol.split_seed,
                       protocol.train_subset, protocol.holdout_subset, 1, protocol.subset_seed)
    # Label only the images the protocol touches: the train and held-out parts.
    used = torch.cat([split.train, split.holdout])
    labels_used = encoder_labels(encoder, train_images, used, dtype=dtype)
    metrics, scores = {}, []
    for i in range(min(config.quick_eval_tasks, encoder.n_tasks)):
        train = torch.zeros(len(train_images), dtype=torch.long)
        train[used] = labels_used[:, i]
        labels = TaskLabels(f"discovered-{i}", train, None, 2)
        run = AgreementRun(train_images, test_images, labels, split, protocol, seed=0)
        while not run.done:
            run.train_epoch()
        scores.append(run.evaluate_holdout()["eval/agreement"])
        metrics[f"eval/agreement_task_{i}"] = scores[-1]
    metrics["eval/agreement_mean"] = sum(scores) / len(scores)
    return metrics
