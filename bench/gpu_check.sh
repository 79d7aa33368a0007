#!/usr/bin/env bash
# The GPU check in one command, from the repository root: five parts, each under its own time
# limit, into $OUT/gpu_report.md (default: a new temporary folder), plus each part's raw log.
#
#   bash bench/gpu_check.sh              # on the GPU: at most 10 minutes on an H100
#   bash bench/gpu_check.sh --dry-run    # on the CPU at toy sizes: every code path, under a minute
#   OUT=/tmp/gpu bash bench/gpu_check.sh --parts env,throughput --limit throughput=300
#
# Needs only torch, torchvision and numpy: no install step, no Ray, no MLflow, no network.
# CIFAR-10 comes from $TASKDISC_CIFAR10, else ../shared/data when present; without it the
# throughput parts use random images and the agreement-score part is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ -z "${TASKDISC_CIFAR10:-}" && -f ../shared/data/cifar10-jpeg.tar.gz ]]; then
    TASKDISC_CIFAR10="$(cd ../shared/data && pwd)/cifar10-jpeg.tar.gz"
    export TASKDISC_CIFAR10
fi
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}"
export OUT
mkdir -p "$OUT"

# The parts' own limits sum to under 10 minutes; this one only catches a hung supervisor.
guard=()
command -v timeout >/dev/null && guard=(timeout --kill-after=10 660)
${guard[@]+"${guard[@]}"} python bench/gpu_check.py --out "$OUT" "$@"
rc=$?
if [[ $rc -ne 0 ]]; then
    echo -e "\n**FAILED**: the check itself stopped (exit code $rc); see the console output" >>"$OUT/gpu_report.md"
    echo "gpu_check: exit code $rc; report in $OUT/gpu_report.md" >&2
fi
exit $rc
