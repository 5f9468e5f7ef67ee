#!/bin/sh
# test-keystone.sh DIR PORT ADMIN_PASSWORD [LOCKOUT_ATTEMPTS [LOCKOUT_DURATION]]:
# set up a throwaway Keystone for tests and run it in the foreground on
# http://127.0.0.1:PORT/v3.
#
# Everything lives in DIR (created if missing, expected empty): keystone.conf,
# the sqlite database, the fernet and credential key repositories and
# keystone.log. The bootstrap creates user "admin" with ADMIN_PASSWORD, the
# project "admin", role "admin" and region RegionOne. Lockout is on (5
# failures lock an account for 30 minutes) so tests see real lockout
# behaviour. The caller starts this script in the background and stops it
# by PID: the script execs keystone-wsgi-public, so the PID is Keystone's.
# The tests and the benchmark start it through shared/testrig (StartKeystone),
# which also makes the admin REST calls.
#
# Test use only: plain http on loopback, a 4-round password hash, and a
# bootstrap password given on the command line.
set -eu

usage() {
	echo "usage: test-keystone.sh DIR PORT ADMIN_PASSWORD [LOCKOUT_ATTEMPTS [LOCKOUT_DURATION]]" >&2
	exit 2
}
case $# in
3 | 4 | 5) ;;
*) usage ;;
esac
dir=$1
port=$2
password=$3
lockout_attempts=${4:-5}
lockout_duration=${5:-1800}
case $dir in
/*) ;;
*) echo "test-keystone.sh: DIR must be an absolute path, got $dir" >&2; exit 2 ;;
esac
for n in "$port" "$lockout_attempts" "$lockout_duration"; do
	case $n in
	'' | *[!0-9]*) echo "test-keystone.sh: PORT, LOCKOUT_ATTEMPTS and LOCKOUT_DURATION must be numbers, got $n" >&2; exit 2 ;;
	esac
done
[ -n "$password" ] || usage
for cmd in keystone-manage keystone-wsgi-public; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "test-keystone.sh: $cmd not found; run make test-deps" >&2
		exit 1
	fi
done

mkdir -p "$dir"
chmod 0700 "$dir"
conf=$dir/keystone.conf
url=http://127.0.0.1:$port/v3/

cat >"$conf" <<EOF
[DEFAULT]
log_file = $dir/keystone.log
use_stderr = false

[database]
connection = sqlite:///$dir/keystone.db

[token]
provider = fernet

[fernet_tokens]
key_repository = $dir/fernet-keys

[credential]
key_repository = $dir/credential-keys

[identity]
password_hash_rounds = 4

[security_compliance]
lockout_failure_attempts = $lockout_attempts
lockout_duration = $lockout_duration
EOF

# keystone-manage prints harmless eventlet tracebacks on exit; keep them out
# of the caller's output but in the log directory for debugging.
manage() {
	keystone-manage --config-file "$conf" "$@" >>"$dir/keystone-manage.log" 2>&1
}
manage db_sync
# Write-ahead logging: in sqlite's default rollback mode a commit waits for
# a read lock that another of Keystone's own pooled connections holds, so
# every role creation after the first, and other writes now and then,
# answer 500 ("database is locked"). The mode is kept in the database file.
py=/usr/bin/python3 # the interpreter Keystone itself runs on
[ -x "$py" ] || py=python3
mode=$("$py" -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=20)
print(c.execute("PRAGMA journal_mode=WAL").fetchone()[0])
c.close()' "$dir/keystone.db")
if [ "$mode" != wal ]; then
	echo "test-keystone.sh: could not switch $dir/keystone.db to WAL (got $mode)" >&2
	exit 1
fi
manage fernet_setup --keystone-user root --keystone-group root
manage credential_setup --keystone-user root --keystone-group root
manage bootstrap --bootstrap-password "$password" \
	--bootstrap-admin-url "$url" \
	--bootstrap-public-url "$url" \
	--bootstrap-internal-url "$url" \
	--bootstrap-region-id RegionOne

OS_KEYSTONE_CONFIG_FILES=$conf
export OS_KEYSTONE_CONFIG_FILES
exec keystone-wsgi-public --host 127.0.0.1 --port "$port"
