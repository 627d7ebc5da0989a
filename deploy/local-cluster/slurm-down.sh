#!/usr/bin/env bash
# slurm-down.sh — tear down the single-node Slurm lab started by slurm-up.sh.
#
#   bash slurm-down.sh            stop every daemon slurm-up.sh started (by the PID in its pidfile)
#   bash slurm-down.sh --purge    ... and also delete $SLURMLAB_DIR (state, spool, DB, keys, logs),
#                                 /etc/slurm/slurm.conf, /etc/slurm/slurmdbd.conf and the test user.
#
# Packages (and /etc/munge/munge.key, which the munge package made) are left installed.
# Only processes whose pidfile we wrote are signalled (PID alive + cmdline checked), plus a
# slurmstepd left behind by *our* slurmd (it holds $SLURMLAB_DIR/log/slurmd.log open) and its job tree.
set -u
L=${SLURMLAB_DIR:-/tmp/slurmlab}
USER_NAME=${SLURMLAB_USER:-slurmuser}
PURGE=0
[ "${1:-}" = "--purge" ] && PURGE=1

alive() { # pid -> true if the process exists and is not a zombie
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st:0:1}" != "Z" ]
}

stop_pidfile() { # name pidfile regex-that-the-cmdline-must-match
  local name=$1 pf=$2 re=$3 pid i
  if [ ! -s "$pf" ]; then echo "  $name: no pidfile ($pf)"; return 0; fi
  pid=$(tr -dc '0-9' <"$pf")
  if [ -n "$pid" ] && alive "$pid" && grep -qaE "$re" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 75); do alive "$pid" || break; sleep 0.2; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null; echo "  $name: SIGKILLed (pid $pid)"
    else echo "  $name: stopped (pid $pid)"; fi
  else
    echo "  $name: not running (stale pidfile)"
  fi
  rm -f "$pf"
}

echo "slurm_down: stopping lab in $L"
# 1. cancel jobs while slurmctld still answers, and wait until they are gone, so that no
#    slurmstepd (they are reparented to PID 1, not children of slurmd) outlives the cluster
if command -v squeue >/dev/null 2>&1 && [ -s "$L/run/slurmctld.pid" ] && timeout 5 squeue -h >/dev/null 2>&1; then
  jobs=$(timeout 5 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    echo "  cancelling jobs: $jobs"; scancel $jobs 2>/dev/null
    for i in $(seq 1 50); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi
# 2. daemons, in reverse start order
stop_pidfile slurmd    "$L/run/slurmd.pid"        'slurmd'
stop_pidfile slurmctld "$L/run/slurmctld.pid"     'slurmctld'
stop_pidfile slurmdbd  "$L/run/slurmdbd.pid"      'slurmdbd'
stop_pidfile mariadbd  "$L/mysqlrun/mysqld.pid"   "datadir=$L/mysql"
stop_pidfile sshd      "$L/run/sshd.pid"          "$L/ssh/sshd_config"
stop_pidfile munged    /run/munge/munged.pid      'munged'
# 3. a slurmstepd that outlived everything: ours iff it holds our slurmd.log open; kill it and its children, by PID
for pid in $(ps -eo pid=,comm= | awk '$2=="slurmstepd"{print $1}'); do
  if ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF "$L/log/slurmd.log"; then
    # the whole tree below it (job script, its children, ...), collected before anything is killed
    tree=$(ps -eo pid=,ppid= | awk -v root="$pid" '{par[$1]=$2} END {
             for (p in par) { q=p; while (q in par && q!=root && q>1) q=par[q]; if (q==root) printf "%s ", p } }')
    echo "  killing leftover slurmstepd and its process tree: $tree"
    kill -KILL $tree 2>/dev/null
  fi
done

if [ "$PURGE" = 1 ]; then
  echo "  purging $L, /etc/slurm/slurm.conf, /etc/slurm/slurmdbd.conf, user $USER_NAME"
  if id "$USER_NAME" >/dev/null 2>&1; then userdel "$USER_NAME" 2>/dev/null || true; fi
  rm -rf "$L" /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf /dev/shm/slurmlab_*
fi
echo "slurm_down: done"
