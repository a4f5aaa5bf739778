#!/usr/bin/env bash
# Runs the CLI on the generated workload at each scale under /usr/bin/time -v
# and prints one line per operation: scale, wall seconds, peak RSS, MB/s
# of archive bytes (also for export, which writes the archive).
# Usage: scripts/bench-rss.sh [WORKDIR] [SCALES...]
# (default WORKDIR: ./target/bench-work, SCALES: 1 4). Needs ~3 GB of disk
# per scale unit (16 → ~50 GB).
# LVBAK_BENCH_COLD=1 runs every operation with what it reads out of the
# page cache (each file dropped with `dd iflag=nocache count=0`, written
# files synced first), so that every scale runs in the same state: warm,
# a 16x source (21 GB) cannot stay cached beside its archive on a 24 GB
# machine while a 1x one does.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-target/bench-work}"; shift || true
scales=("${@:-1 4}")
cargo build --release --features sqlite --example gen_workload >/dev/null
cargo build --release >/dev/null
bin=target/release/lvbak
mkdir -p "$work"
measure() { # name scale archive cmd... (MB/s is of the archive's bytes,
  # read once the command has run: the export writes it)
  local name=$1 scale=$2 archive=$3; shift 3
  local log; log=$(mktemp)
  if [ -n "$cold" ]; then
    evict "$archive"
    [ "$name" != export ] || evict "$d/src"
  fi
  /usr/bin/time -v "$@" >/dev/null 2>"$log"
  local wall rss bytes
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$log")
  bytes=$(stat -c %s "$archive")
  local rate="-" # /usr/bin/time measures 10 ms steps: 0.00 s has no rate
  if [ "$(echo "$wall > 0" | bc)" = 1 ]; then rate=$(printf '%.1f' "$(echo "$bytes/1000000/$wall" | bc -l)"); fi
  printf '%-12s x%-3s %8.2f s  %7.1f MiB peak RSS  %8s MB/s\n' "$name" "$scale" "$wall" "$(echo "$rss/1024" | bc -l)" "$rate"
  rm -f "$log"
}
cold="${LVBAK_BENCH_COLD:-}"
evict() { # drops the page cache of every file under each existing argument
  sync
  local p
  for p in "$@"; do
    [ -e "$p" ] || continue
    find "$p" -type f -print0 |
      xargs -0 -r -P2 -I{} dd if={} iflag=nocache count=0 status=none
  done
}
# Outputs of an earlier run are deleted first, then the script waits
# (LVBAK_BENCH_SETTLE seconds, default 120): on a journal-less ext4 volume
# (this project's machines) the kernel skips recently freed inodes, and
# creating the import's thousands of files right after deleting as many
# took 3.6-4.2 s for 6,000 files instead of 0.17-0.19 s. Imports go to a
# new folder each time.
for s in ${scales[@]}; do rm -rf "$work/x$s/out.lvbak" "$work/x$s"/dst*; done
sleep "${LVBAK_BENCH_SETTLE:-120}"
for s in ${scales[@]}; do
  d="$work/x$s"
  [ -f "$d/src/lumiverse.db" ] || target/release/examples/gen_workload "$d/src" "$s" >/dev/null
  # Read the source once first when it fits easily in memory, so every
  # scale that can run warm does (a 1x source pushed out of the page cache
  # by a 16x run made the 1x export 5.0 s instead of 2.6-2.8 s).
  src_kb=$(du -sk "$d/src" | cut -f1)
  avail_kb=$(awk '/MemAvailable/{print $2}' /proc/meminfo)
  if [ -z "$cold" ] && [ "$src_kb" -lt $((avail_kb / 2)) ]; then
    find "$d/src" -type f -exec cat {} + >/dev/null
  fi
  measure export "$s" "$d/out.lvbak" $bin export --db "$d/src/lumiverse.db" --user bench-user -o "$d/out.lvbak"
  size=$(stat -c %s "$d/out.lvbak")
  dst="$d/dst-$(date +%s)"
  measure import "$s" "$d/out.lvbak" $bin import "$d/out.lvbak" --db "$dst/lumiverse.db" --user bench-user
  measure verify-fast "$s" "$d/out.lvbak" $bin verify "$d/out.lvbak"
  measure verify-deep "$s" "$d/out.lvbak" $bin verify --deep "$d/out.lvbak"
  echo "x$s archive: $size bytes, $(unzip -l "$d/out.lvbak" 2>/dev/null | tail -1 | awk '{print $2}') entries"
done
