#!/usr/bin/env bash
# The GPU check in one command (docs/gpu.md: the device call, the one-time data step, how to read
# the report): five parts inside --budget seconds (default 480), into $OUT/gpu_report.md (else a
# new temporary folder) with each part's raw log beside it.
#
#   bash bench/gpu_check.sh --budget 480              # on the GPU: the device tool's command
#   bash bench/gpu_check.sh --budget 480 --dry-run    # the same on the CPU at toy sizes, in seconds
#   bash bench/gpu_check.sh --parts env,throughput --limit throughput=300
#
# Needs only torch, torchvision and numpy: no install step, no Ray, no MLflow, no network.
# CIFAR-10: $TASKDISC_CIFAR10, else .data/cifar10-jpeg.tar.gz in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# python3: the device machine's interpreter with PyTorch has no `python` beside it.
exec "${PYTHON:-python3}" bench/gpu_check.py "$@"
