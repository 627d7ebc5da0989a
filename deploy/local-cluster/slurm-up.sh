#!/usr/bin/env bash
# slurm-up.sh — bring up a real single-node Slurm cluster (Debian 12: Slurm 22.05.8) plus an
# SSH server on 127.0.0.1, on a machine without systemd (PID 1 is not an init), as root.
# biomero-stage's integration tests and transfer benchmark run against it; .ci/run starts it.
# (Adapted from the lab notes of this machine class; see deploy/local-cluster/README.md.)
# Idempotent: re-running restarts the daemons with freshly written configs (state is kept;
# run `slurm_down.sh --purge` first for a clean slate). Measured on a 2-core Debian 12 VM:
# apt 10–30 s when packages are missing (first-ever install of everything ≈ 31 s; 9 s when only the
# slurm/munge/mariadb packages were missing), then 3–8 s to start all daemons + the smoke test.
#
# Environment knobs (all optional):
#   SLURMLAB_DIR=/tmp/slurmlab   everything that is not a system path lives here
#   SLURMLAB_DBD=1               1: MariaDB + slurmdbd, so plain `sacct` works; 0: skip them
#                                (then use `sacct -c` = jobcomp/filetxt, or `scontrol show job`)
#   SLURMLAB_USER=slurmuser      unprivileged user that ssh logs in as and that submits jobs
#   SLURMLAB_SSH_PORT=2222  SLURMLAB_DB_PORT=3307   (3306 is often taken by a site MariaDB)
#
# Result:
#   ssh -F $SLURMLAB_DIR/client/ssh_config slurm       -> $SLURMLAB_USER@127.0.0.1:2222 (key auth)
#   ssh -F $SLURMLAB_DIR/client/ssh_config slurm-root  -> root@127.0.0.1:2222
#   $SLURMLAB_DIR/env.sh exports SLURMLAB_SSH_CONFIG / SLURMLAB_SSH_KEY / ...
set -euo pipefail
# CI may run us with stdin *closed*: then the daemons' first open() (their log file) becomes fd 0, which
# they later point at /dev/null when daemonizing — slurmd/slurmctld lose their logs and batch launches
# fail ("launch failed requeued held"). Give everything a real stdin.
exec </dev/null

L=${SLURMLAB_DIR:-/tmp/slurmlab}
WITH_DBD=${SLURMLAB_DBD:-1}
USER_NAME=${SLURMLAB_USER:-slurmuser}
SSH_PORT=${SLURMLAB_SSH_PORT:-2222}
DB_PORT=${SLURMLAB_DB_PORT:-3307}
DB_PASS=slurmlab-db-pw          # test-only password for the 'slurm' MariaDB account
T0=$(date +%s)

log() { printf '[slurm-up %3ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { log "ERROR: $*"; exit 1; }
wait_for() { # description timeout_seconds command...   (wall-clock timeout)
  local what=$1 end=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || die "timed out after $2 s waiting for $what"
    sleep 0.2
  done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [ -n "$st" ] && [ "${st:0:1}" != Z ]; }
stop_pidfile() { # name pidfile cmdline-regex — stop a daemon a previous run started (by PID)
  local pf=$2 re=$3 pid i
  [ -s "$pf" ] || return 0
  pid=$(tr -dc '0-9' <"$pf")
  if [ -n "$pid" ] && alive "$pid" && grep -qaE "$re" "/proc/$pid/cmdline"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 75; i++)); do alive "$pid" || break; sleep 0.2; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    log "stopped previous $1 (pid $pid)"
  fi
  rm -f "$pf"
}

[ "$(id -u)" = 0 ] || die "run as root"
mkdir -p "$L"/{state,spool,log,run,ssh/authorized_keys,client,home}
chmod 755 "$L" "$L"/ssh "$L"/ssh/authorized_keys "$L"/home "$L"/log

# ---------------------------------------------------------------- 1. packages
PKGS="slurmctld slurmd slurm-client munge openssh-server openssh-client zstd"
[ "$WITH_DBD" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server mariadb-client"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "apt-get install$missing"
  # No init system here: keep maintainer scripts from trying to start the services themselves
  # (this image already ships /usr/sbin/policy-rc.d = 'exit 101'; add one only if absent).
  tmp_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && tmp_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  APT="apt-get -o DPkg::Lock::Timeout=300"          # another apt/dpkg may be running (shared machine)
  $APT update -qq >"$L/log/apt-update.log" 2>&1 || { cat "$L/log/apt-update.log"; die "apt-get update failed"; }
  # shellcheck disable=SC2086
  if ! $APT install -y -q --no-install-recommends $missing >"$L/log/apt-install.log" 2>&1; then
    tail -30 "$L/log/apt-install.log"; [ $tmp_policy = 1 ] && rm -f /usr/sbin/policy-rc.d; die "apt-get install failed"
  fi
  [ $tmp_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  log "packages installed: $(dpkg-query -W -f='${Version}' slurmctld) slurm, $(dpkg-query -W -f='${Version}' munge) munge"
fi

# ---------------------------------------------------------------- 2. stop what a previous run left
stop_pidfile slurmd    "$L/run/slurmd.pid"      'slurmd'
stop_pidfile slurmctld "$L/run/slurmctld.pid"   'slurmctld'
stop_pidfile slurmdbd  "$L/run/slurmdbd.pid"    'slurmdbd'
stop_pidfile mariadbd  "$L/mysqlrun/mysqld.pid" "datadir=$L/mysql"
stop_pidfile sshd      "$L/run/sshd.pid"        "$L/ssh/sshd_config"
stop_pidfile munged    /run/munge/munged.pid    'munged'
for p in 6817 6818 6819 "$SSH_PORT"; do port_open "$p" && die "port $p is already in use by something else"; done
[ "$WITH_DBD" = 1 ] && port_open "$DB_PORT" && die "port $DB_PORT is already in use by something else"

# ---------------------------------------------------------------- 3. munge
if [ ! -s /etc/munge/munge.key ]; then mungekey --create --keyfile=/etc/munge/munge.key; fi
chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge          # tmpfiles.d would make it; no systemd here
runuser -u munge -- /usr/sbin/munged                      # daemonizes; pidfile /run/munge/munged.pid
wait_for "munged" 10 munge -n
log "munged up (pid $(cat /run/munge/munged.pid))"

# ---------------------------------------------------------------- 4. test user
if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd -m -d "$L/home/$USER_NAME" -s /bin/bash "$USER_NAME"
fi
usermod -p '*' "$USER_NAME"   # '!' (locked, the useradd default) makes sshd with UsePAM=no refuse even key logins
USER_HOME=$(getent passwd "$USER_NAME" | cut -d: -f6)
[ -d "$USER_HOME" ] || install -d -o "$USER_NAME" -g "$(id -gn "$USER_NAME")" -m 755 "$USER_HOME"

# ---------------------------------------------------------------- 5. slurm.conf (+ slurmdbd)
hw=$(slurmd -C | head -1)
hwval() { printf '%s\n' "$hw" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
CPUS=$(hwval CPUs); SOCKETS=$(hwval SocketsPerBoard); CORES=$(hwval CoresPerSocket)
THREADS=$(hwval ThreadsPerCore); MEM=$(( $(hwval RealMemory) * 9 / 10 ))

if [ "$WITH_DBD" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi
cat >/etc/slurm/slurm.conf <<EOF
# single-node test cluster written by slurm_up.sh
ClusterName=lab
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$L/state
SlurmdSpoolDir=$L/spool
SlurmctldPidFile=$L/run/slurmctld.pid
SlurmdPidFile=$L/run/slurmd.pid
SlurmctldLogFile=$L/log/slurmctld.log
SlurmdLogFile=$L/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/filetxt
JobCompLoc=$L/log/jobcomp.txt
$ACCT
EnforcePartLimits=ALL
ReturnToService=2
MinJobAge=300
SlurmdTimeout=300
InactiveLimit=0
KillWait=5
NodeName=localhost CPUs=$CPUS Sockets=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
chmod 644 /etc/slurm/slurm.conf

if [ "$WITH_DBD" = 1 ]; then
  install -d -o mysql -g mysql -m 755 "$L/mysql" "$L/mysqlrun"
  if [ ! -d "$L/mysql/mysql" ]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$L/mysql" \
      --auth-root-authentication-method=socket --skip-test-db >"$L/log/mariadb-install.log" 2>&1 \
      || { tail -20 "$L/log/mariadb-install.log"; die "mariadb-install-db failed"; }
  fi
  # mariadbd does not daemonize: detach it with setsid -f; it writes its own pidfile.
  setsid -f mariadbd --no-defaults --user=mysql --datadir="$L/mysql" \
    --socket="$L/mysqlrun/mysqld.sock" --pid-file="$L/mysqlrun/mysqld.pid" \
    --log-error="$L/mysqlrun/mariadb.err" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1
  wait_for "mariadbd" 60 mariadb-admin --no-defaults -uroot --socket="$L/mysqlrun/mysqld.sock" ping
  mariadb --no-defaults -uroot --socket="$L/mysqlrun/mysqld.sock" -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
    FLUSH PRIVILEGES;"
  log "mariadbd up (pid $(cat "$L/mysqlrun/mysqld.pid"))"

  cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$L/log/slurmdbd.log
PidFile=$L/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  chown root:root /etc/slurm/slurmdbd.conf && chmod 600 /etc/slurm/slurmdbd.conf   # slurmdbd insists on 600, owned by SlurmUser
  slurmdbd                                                 # daemonizes
  wait_for "slurmdbd on :6819" 60 port_open 6819
  log "slurmdbd up (pid $(cat "$L/run/slurmdbd.pid"))"
else
  rm -f /etc/slurm/slurmdbd.conf
fi

# ---------------------------------------------------------------- 6. slurmctld + slurmd
slurmctld                                                  # daemonizes; registers cluster 'lab' in slurmdbd itself
wait_for "slurmctld" 30 scontrol ping
# jobcomp/filetxt: every client that loads the plugin (`sacct -c`) opens JobCompLoc O_WRONLY|O_APPEND
# and dies if it can't, and slurmctld chmods the file to 0644 when it (re)opens it at start-up or
# `scontrol reconfigure` — so make it writable for non-root `sacct -c` *after* slurmctld is up.
chmod 666 "$L/log/jobcomp.txt"
slurmd -N localhost                                        # node name != hostname, so name it explicitly
# idle, or mixed/allocated when a re-run finds jobs that survived the restart ('*' suffix = not responding)
node_up() { case "$(sinfo -h -n localhost -o %T 2>/dev/null)" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac; }
wait_for "node localhost to come up" 60 node_up
log "slurmctld (pid $(cat "$L/run/slurmctld.pid")) + slurmd (pid $(cat "$L/run/slurmd.pid")) up; node $(sinfo -h -n localhost -o %T)"

# ---------------------------------------------------------------- 7. sshd on 127.0.0.1:$SSH_PORT
[ -s "$L/ssh/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C slurmlab-host -f "$L/ssh/ssh_host_ed25519_key"
[ -s "$L/client/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C slurmlab-client -f "$L/client/id_ed25519"
install -m 644 "$L/client/id_ed25519.pub" "$L/ssh/authorized_keys/root"
install -m 644 "$L/client/id_ed25519.pub" "$L/ssh/authorized_keys/$USER_NAME"
cat >"$L/ssh/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $L/ssh/ssh_host_ed25519_key
PidFile $L/run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile $L/ssh/authorized_keys/%u
# /tmp is world-writable (sticky): with StrictModes yes sshd rejects keys under it.
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 50
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel VERBOSE
EOF
install -d -m 755 /run/sshd                                # privilege-separation dir (normally tmpfiles.d)
/usr/sbin/sshd -t -f "$L/ssh/sshd_config"
/usr/sbin/sshd -f "$L/ssh/sshd_config" -E "$L/log/sshd.log"   # daemonizes
wait_for "sshd on :$SSH_PORT" 20 port_open "$SSH_PORT"
log "sshd up on 127.0.0.1:$SSH_PORT (pid $(cat "$L/run/sshd.pid"))"

sshhost() { # alias user
  cat <<EOF
Host $1
  HostName 127.0.0.1
  Port $SSH_PORT
  User $2
  IdentityFile $L/client/id_ed25519
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ServerAliveInterval 15
EOF
}
{ sshhost slurm "$USER_NAME"; sshhost slurm-root root; } >"$L/client/ssh_config"
chmod 600 "$L/client/ssh_config" "$L/client/id_ed25519"
cat >"$L/env.sh" <<EOF
export SLURMLAB_DIR=$L
export SLURMLAB_SSH_CONFIG=$L/client/ssh_config
export SLURMLAB_SSH_KEY=$L/client/id_ed25519
export SLURMLAB_SSH_HOST=127.0.0.1 SLURMLAB_SSH_PORT=$SSH_PORT SLURMLAB_USER=$USER_NAME
export SLURMLAB_USER_HOME=$USER_HOME SLURMLAB_DBD=$WITH_DBD
EOF

# ---------------------------------------------------------------- 8. smoke test, as the normal user over ssh
# (polls scontrol instead of `sbatch --wait`, whose 2,4,8..s back-off costs ~5 s; the first job after
#  slurmctld starts waits ~3 s for the first scheduling pass)
S="ssh -F $L/client/ssh_config"
jid=$($S slurm 'cd ~ && sbatch --parsable -o slurmlab-smoke-%j.out --wrap "echo slurmlab-ok on \$(hostname) as \$(id -un)"') \
  || die "smoke job submission failed"
job_state() { scontrol show job "$jid" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }   # polled locally, as root
job_done() {
  scontrol show job "$jid" | grep -q 'Reason=launch_failed' && return 0   # e.g. 'launch failed requeued held'
  case "$(job_state)" in PENDING|RUNNING|CONFIGURING|COMPLETING|"") return 1 ;; *) return 0 ;; esac
}
wait_for "smoke job $jid" 120 job_done
state=$(job_state)
[ "$state" = COMPLETED ] || { scontrol show job "$jid"; die "smoke job $jid ended $state"; }
out=$($S slurm "cat ~/slurmlab-smoke-$jid.out; rm -f ~/slurmlab-smoke-$jid.out")
case "$out" in *slurmlab-ok*) ;; *) die "unexpected smoke job output: $out" ;; esac
if [ "$WITH_DBD" = 1 ]; then
  acct_ok() { [ "$(sacct -n -X -P -j "$jid" -o State)" = COMPLETED ]; }
  wait_for "sacct to report job $jid" 30 acct_ok
fi
[ "$WITH_DBD" = 1 ] && { $S slurm "sacct -n -X -P -j $jid -o State" | grep -qx COMPLETED || die "sacct as $USER_NAME failed"; }
log "smoke test OK: job $jid ($out) state=$state$([ "$WITH_DBD" = 1 ] && echo ', sacct OK')"
log "ready. ssh -F $L/client/ssh_config slurm 'sinfo'   (source $L/env.sh for paths)"
