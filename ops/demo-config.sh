#!/bin/sh
# demo-config.sh DIR BIN_DIR: lay out a self-contained local set-up in DIR for
# "make run" and the end-to-end tests: a CA and server certificate for
# 127.0.0.1/localhost, a token signing key and certificate, a users file with
# user "demo" and a random password, a storage root and both config files.
# Existing files are kept, so the demo password survives re-runs.
#
# Environment: REGISTRY_ADDR (127.0.0.1:9001), TOKEN_ADDR (127.0.0.1:9002),
# KEY_ALG (EC-P256 | EC-P384 | RSA; default EC-P256).
set -eu

dir=${1:?usage: demo-config.sh DIR BIN_DIR}
bin=${2:?usage: demo-config.sh DIR BIN_DIR}
registry_addr=${REGISTRY_ADDR:-127.0.0.1:9001}
token_addr=${TOKEN_ADDR:-127.0.0.1:9002}
key_alg=${KEY_ALG:-EC-P256}

command -v openssl >/dev/null 2>&1 || {
	echo "demo-config.sh: openssl is needed: apt-get install openssl" >&2
	exit 1
}

umask 077
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

genkey() { # genkey FILE
	[ -f "$1" ] && return 0
	case "$key_alg" in
	EC-P256) openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" ;;
	EC-P384) openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$1" ;;
	RSA) openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" ;;
	*) echo "demo-config.sh: KEY_ALG must be EC-P256, EC-P384 or RSA" >&2; exit 1 ;;
	esac
}

# The CA that clients trust (run/ca.pem), and the server certificate both
# daemons present.
genkey "$dir/ca.key"
[ -f "$dir/ca.pem" ] || openssl req -x509 -new -key "$dir/ca.key" -days 3650 \
	-subj "/CN=stx-registry demo CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$dir/ca.pem"
genkey "$dir/server.key"
[ -f "$dir/server.pem" ] || openssl req -x509 -new -key "$dir/server.key" \
	-CA "$dir/ca.pem" -CAkey "$dir/ca.key" -days 825 \
	-subj "/CN=localhost" \
	-addext "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" \
	-addext "basicConstraints=critical,CA:FALSE" \
	-addext "keyUsage=critical,digitalSignature" \
	-addext "extendedKeyUsage=serverAuth" \
	-out "$dir/server.pem"

# The token signing key and its self-signed certificate: the registry trusts
# exactly the keys in token.pem.
genkey "$dir/token.key"
# Not a CA (openssl req -x509 makes one by default): the registry refuses a
# CA in token_certificate.
[ -f "$dir/token.pem" ] || openssl req -x509 -new -key "$dir/token.key" -days 3650 \
	-subj "/CN=stx-token-server signing key" \
	-addext "basicConstraints=critical,CA:FALSE" \
	-addext "keyUsage=critical,digitalSignature" \
	-out "$dir/token.pem"

# The demo user. Its password is random, printed by "make run" and kept in
# demo-credentials (mode 0600) as demo:PASSWORD.
if [ ! -f "$dir/demo-credentials" ]; then
	pw=$(openssl rand -base64 18 | tr -d '/+=\n')
	printf '%s\n' "$pw" | "$bin/stx-token-server" passwd -f "$dir/users" demo
	printf 'demo:%s\n' "$pw" >"$dir/demo-credentials"
fi

# skopeo and podman take a directory of *.crt CA files (--cert-dir).
mkdir -p "$dir/certs.d"
cp "$dir/ca.pem" "$dir/certs.d/ca.crt"

mkdir -p "$dir/storage"
chmod 700 "$dir/storage"

# Refresh tokens (their hashes) live here; production puts it on DRBD.
mkdir -p "$dir/state"
chmod 700 "$dir/state"

[ -f "$dir/stx-token-server.conf" ] || cat >"$dir/stx-token-server.conf" <<CONF
# Demo configuration written by ops/demo-config.sh; see stx-token-server.conf(5).
listen $token_addr
tls_certificate $dir/server.pem
tls_key $dir/server.key
service $registry_addr
issuer stx-token-server
signing_key $dir/token.key
auth_backend users
users_file $dir/users
admin_user admin
state_directory $dir/state
CONF

[ -f "$dir/stx-registry.conf" ] || cat >"$dir/stx-registry.conf" <<CONF
# Demo configuration written by ops/demo-config.sh; see stx-registry.conf(5).
listen $registry_addr
tls_certificate $dir/server.pem
tls_key $dir/server.key
root_directory $dir/storage
# A demo root is a plain directory; production keeps the default (yes).
require_mount no
token_realm https://$token_addr/token/
token_service $registry_addr
token_issuer stx-token-server
token_certificate $dir/token.pem
CONF
exit 0
