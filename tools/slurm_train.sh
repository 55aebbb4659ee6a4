#!/usr/bin/env bash
# Training on a Slurm cluster, one task per GPU:
#   GPUS=32 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args...]
# GPUS (total), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 10), SRUN_ARGS are read.
# Preemption: on SIGTERM or SIGUSR1 the run finishes its iteration, saves an exact checkpoint and
# exits with status 75; inside a batch job this script then requeues the job, which resumes
# (resume=True in the pretraining configs, else pass --resume). Ask Slurm for a warning before
# the time limit, e.g. from an sbatch script submitted with --requeue:
#   SRUN_ARGS="--signal=USR1@120" bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG --resume
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-10}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# The project's environment (tools/setup_env.sh makes .venv) unless PYTHON names another one.
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

# no empty entry when PYTHONPATH is unset: "" would put the launch directory on sys.path
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 $SRUN_ARGS \
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --launcher slurm "${@:4}" || status=$?
status=${status:-0}
if [[ $status -eq 75 && -n "${SLURM_JOB_ID:-}" ]]; then
    echo "Preempted: checkpoint saved; requeueing Slurm job $SLURM_JOB_ID." >&2
    scontrol requeue "$SLURM_JOB_ID" || echo "scontrol requeue failed (a cancelled job?)" >&2
fi
exit "$status"
