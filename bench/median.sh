# Sourced by the overhead scripts: `median_min_max "v1 v2 …"` prints "median min max".
median_min_max() {
  echo "$1" | tr ' ' '\n' | grep . | sort -g |
    awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; print m, a[1], a[NR]}'
}
