#!/bin/sh
# run-demo.sh DIR BIN_DIR: run both daemons in the foreground with the
# configuration demo-config.sh wrote. Ctrl-C (or either daemon exiting)
# stops both.
set -eu
dir=${1:?usage: run-demo.sh DIR BIN_DIR}
bin=${2:?usage: run-demo.sh DIR BIN_DIR}

"$bin/stx-token-server" -f "$dir/stx-token-server.conf" &
token_pid=$!
"$bin/stx-registry" -f "$dir/stx-registry.conf" &
registry_pid=$!

# stop stops both daemons and sets rc: 0 when both stopped cleanly.
stop() {
	trap - INT TERM
	kill -TERM "$token_pid" "$registry_pid" 2>/dev/null || true
	rc=0
	wait "$token_pid" 2>/dev/null || rc=1
	wait "$registry_pid" 2>/dev/null || rc=1
}
trap 'stop; exit 0' INT TERM

registry=$(sed -n 's/^listen //p' "$dir/stx-registry.conf")
token=$(sed -n 's/^listen //p' "$dir/stx-token-server.conf")
cat <<MSG

stx-registry on https://$registry, stx-token-server on https://$token.
CA certificate: $dir/ca.pem (also as $dir/certs.d/ca.crt for --cert-dir)
Demo login:     $(cat "$dir/demo-credentials")   (in $dir/demo-credentials)
Log in:         podman login --cert-dir $dir/certs.d -u demo $registry
Push demo/...:  see README.md, "Try it". Ctrl-C stops both daemons.

MSG

# Stop both as soon as either exits. Ctrl-C reaches the daemons too (one
# process group), and they may stop before the trap runs: exit 0 when both
# stopped cleanly, 1 when one failed.
while kill -0 "$token_pid" 2>/dev/null && kill -0 "$registry_pid" 2>/dev/null; do
	sleep 1
done
stop
exit "$rc"
