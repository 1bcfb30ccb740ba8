#!/usr/bin/env bash
# Done-when check of the torchvision support: for each model and input size, `snntopo encode`
# (ERK 0.9, data-free: no CIFAR files needed) of the three encodings, then `snntopo metrics`
# on each graph. Prints one line per (model, size, encoding): edges, encode seconds, metrics
# seconds, status. Usage: scripts/torchvision_check.sh OUTDIR [SIZES] [MODELS...]
set -u
out=${1:-/tmp/tvcheck}; sizes=${2:-"32 64"}; shift 2 2>/dev/null || shift $#
models=${*:-"resnet18 resnet50 vgg16_bn mobilenet_v2 mobilenet_v3_small densenet121 efficientnet_b0"}
py=${PYTHON:-python}
mkdir -p "$out"
for m in $models; do for s in $sizes; do for e in mge rolled rolled-channel; do
  g="$out/${m}_${s}_${e}.npz"
  t0=$(date +%s.%N)
  enc=$($py -m snntopo.cli encode --arch "torchvision:$m" --dataset cifar10 --input-size "$s" \
        --method erk --sparsity 0.9 --encoding "$e" --out "$g" 2>&1 | tail -1)
  t1=$(date +%s.%N)
  $py -m snntopo.cli metrics "$g" --out "$out/${m}_${s}_${e}.json" > "$out/${m}_${s}_${e}.log" 2>&1
  rc=$?
  t2=$(date +%s.%N)
  edges=$(echo "$enc" | $py -c 'import json,sys; print(json.loads(sys.stdin.read())["edges"])' 2>/dev/null || echo "ENCODE-FAILED: $enc")
  printf "%s %s %s edges=%s encode_s=%.1f metrics_s=%.1f metrics_rc=%s\n" "$m" "$s" "$e" "$edges" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$rc"
done; done; done
