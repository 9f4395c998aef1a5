#!/bin/bash
# s1kit SFT on 2 nodes x 8 GPUs: one `accelerate launch` per node (FSDP config), rendezvous from SLURM's env.
# Launch: sbatch scripts/slurm/train_2x8.sh recipes/s1.1-32b.yaml --dataset data/s1K-1.1 --output-dir ckpts/s1.1-32b
#   other shapes: sbatch --nodes=4 --gpus-per-node=8 scripts/slurm/train_2x8.sh ...  (counts come from SLURM, and
#   keep the s1 batch of 16 with --gradient-accumulation-steps: 16 / (nodes x 8 x per_device_train_batch_size))
#   env: ACCELERATE_CONFIG (default recipes/accelerate/fsdp-qwen2.yaml), MASTER_PORT (default derived from the job
#   id), WANDB_ENTITY / WANDB_PROJECT when the recipe reports to wandb. Rerunning the same command resumes
#   (the recipes set resume: auto).
#SBATCH --job-name=s1kit-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
#SBATCH --output=%x-%j.out
set -euo pipefail

RECIPE=${1:?usage: sbatch scripts/slurm/train_2x8.sh RECIPE [s1kit train flags ...]}
shift
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-recipes/accelerate/fsdp-qwen2.yaml}
NNODES=${SLURM_NNODES:?run under SLURM (sbatch/salloc)}
GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-$(nvidia-smi --list-gpus | wc -l)}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk 'NR == 1')  # awk reads all: no SIGPIPE
MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
WORLD=$((NNODES * GPUS_PER_NODE))
echo "s1kit train: $NNODES nodes x $GPUS_PER_NODE GPUs = $WORLD processes, rendezvous $MASTER_ADDR:$MASTER_PORT, recipe $RECIPE"

# One task per node; each computes its machine rank from SLURM_NODEID inside the step.
srun --nodes="$NNODES" --ntasks-per-node=1 bash -c '
  exec accelerate launch --config_file "$0" \
    --num_machines "$1" --num_processes "$2" --machine_rank "$SLURM_NODEID" \
    --main_process_ip "$3" --main_process_port "$4" --rdzv_backend static --same_network \
    -m s1kit.train --config "$5" "${@:6}"
' "$ACCELERATE_CONFIG" "$NNODES" "$WORLD" "$MASTER_ADDR" "$MASTER_PORT" "$RECIPE" "$@"
