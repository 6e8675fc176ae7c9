#!/bin/bash
# Convert in a SLURM array of 16 tasks, then merge once all of them succeeded.
#   DATASET=es-imagenet RAW=/shared/raw/es-imagenet OUT=s3://my-bucket/es-imagenet scripts/cluster/submit.sh
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p logs
array=$(sbatch --parsable --export=ALL convert.sbatch)
sbatch --parsable --export=ALL --dependency=afterok:"${array%%;*}" merge.sbatch
