#!/bin/sh
# The figures of the README's "Analyses" section, from the embedded dataset (or DATASET):
#   sh docs/figures.sh [DATASET]
set -e
DATASET=${1:-}
D=${DATASET:+--dataset $DATASET}
cd "$(dirname "$0")/.."
llkl-db map $D --method tsne --color family --out docs/embedded-map.png --out docs/embedded-map.html
for model in llkl-db/tiny-llama-0.6m llkl-db/tiny-neox-0.3m llkl-db/tiny-llama-0.3m; do
  name=$(basename "$model")
  llkl-db trajectory $D "$model" --plot "docs/trajectory-$name.png" --json > "docs/trajectory-$name.json"
done
llkl-db scale $D --json > docs/embedded-scale.json
llkl-db scale $D
llkl-db layers $D HuggingFaceTB/SmolLM2-135M-Instruct --plot docs/layers-smollm2.png
