#!/bin/bash
# Sets up the anchor benchmarks (pgBackRest 2.45, barman-cloud) on this machine by running
# the scripts in shared/anchors, which sits next to this repository's clone:
#   00_setup.sh            apt packages (pgbackrest, barman-cli-cloud, python3-boto3, time...),
#                          s3rver in /tmp/anchors/npm, TLS cert, a PostgreSQL 15 cluster loaded
#                          with pgbench -s 100 (~1.5 GB, several minutes on 2 cores), starts the
#                          cluster and both s3rver instances
#   05_collect_segments.sh 64 real 16 MB WAL segments into /tmp/anchors/walsrc (if it yields
#                          fewer, as on a busy machine, the same collection is repeated with
#                          pgbench in rounds until there are 64; see collect_until_enough)
# Both are re-runnable and skip what already exists. Must run as root.
# Override the scripts' location with WALVAULT_ANCHOR_SCRIPTS=/path/to/anchors.
set -euo pipefail

ANCHORS="${WALVAULT_ANCHOR_SCRIPTS:-$(dirname "$0")/../../shared/anchors}"
if [[ ! -f "$ANCHORS/00_setup.sh" || ! -f "$ANCHORS/05_collect_segments.sh" ]]; then
  echo "anchor-setup: anchor scripts not found at $ANCHORS" >&2
  echo "  (expected shared/anchors next to the repository clone, or set WALVAULT_ANCHOR_SCRIPTS)" >&2
  exit 1
fi
ANCHORS="$(cd "$ANCHORS" && pwd)"
if [[ $(id -u) -ne 0 ]]; then
  echo "anchor-setup: must run as root (the anchor scripts install packages and run PostgreSQL as user postgres)" >&2
  exit 1
fi

N=64
count_segs() { ls "${ANCHORS_DIR:-/tmp/anchors}/walsrc" 2>/dev/null | grep -cE '^[0-9A-F]{24}$' || true; }

# Same procedure as 05_collect_segments.sh (same cluster, same pgbench -c 4 -j 2 workload
# starting right after a CHECKPOINT, same keep rule, pg_control.copy), but pgbench runs in
# 20 s rounds until N segments are archived instead of a fixed 40 s: on a busy 2-core
# machine 40 s yields only ~35-45 segments (even idle it is borderline), and 05 does not
# check the count. Which segments come out depends on the transactions since the
# checkpoint (full-page images), not on how long they took, so they are equivalent.
# 05_collect_segments.sh (also called by 20_archive_direct.sh) then sees >= N segments of
# the current cluster and keeps them.
collect_until_enough() (
  . "$ANCHORS/lib.sh"
  pg_running || pg_start
  rm -rf "$SEGSRC"; mkdir -p "$SEGSRC"; chown "$PGUSER_OS" "$SEGSRC"
  psqlq "SELECT pg_switch_wal()" >/dev/null
  set_archive_command "test ! -f $SEGSRC/%f && cp %p $SEGSRC/%f"
  psqlq "CHECKPOINT"
  start_seg=$(psqlq "SELECT pg_walfile_name(pg_current_wal_lsn())")
  after() { ls "$SEGSRC" | grep -E '^[0-9A-F]{24}$' | sort | awk -v s="$start_seg" '$0 >= s'; }
  for round in $(seq 20); do
    aspg pgbench -h /tmp -p $PGPORT -n -c 4 -j 2 -T 20 postgres >/dev/null
    wait_archived
    n=$(after | wc -l)
    log "round $round: $n segments since $start_seg"
    if (( n >= N )); then break; fi
  done
  set_archive_command "/bin/true"
  after | head -n $N >"$A/segs.keep"
  for f in $(ls "$SEGSRC"); do grep -qx "$f" "$A/segs.keep" || rm -f "$SEGSRC/$f"; done
  log "kept $(ls "$SEGSRC" | wc -l) segments: $(head -1 "$A/segs.keep") .. $(tail -1 "$A/segs.keep")"
  cp "$PGDATA/global/pg_control" "$A/pg_control.copy"
)

start=$SECONDS
echo "anchor-setup: $ANCHORS/00_setup.sh" >&2
"$ANCHORS/00_setup.sh"
echo "anchor-setup: $ANCHORS/05_collect_segments.sh" >&2
"$ANCHORS/05_collect_segments.sh"
if (( $(count_segs) < N )); then
  echo "anchor-setup: 05_collect_segments.sh left $(count_segs) of $N segments (machine busy?); collecting until $N" >&2
  collect_until_enough
  "$ANCHORS/05_collect_segments.sh"   # must now accept them ("have 64 segments")
fi
if (( $(count_segs) < N )); then
  echo "anchor-setup: only $(count_segs) of $N segments in ${ANCHORS_DIR:-/tmp/anchors}/walsrc" >&2
  exit 1
fi
echo "anchor-setup: done in $((SECONDS - start)) s; $N segments in ${ANCHORS_DIR:-/tmp/anchors}/walsrc" >&2
