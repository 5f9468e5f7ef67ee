#!/bin/sh
# install-test-deps.sh: install, as root with apt-get, the Debian packages that
# "make check" and "make test" drive for real. Packages already present are
# not touched; nothing is downloaded outside Debian's archive.
set -eu

# command:package pairs.
need="skopeo:skopeo podman:podman ctr:containerd containerd:containerd
shellcheck:shellcheck mandoc:mandoc openssl:openssl xmllint:libxml2-utils
keystone-wsgi-public:keystone ocf-tester:resource-agents mkfs.ext4:e2fsprogs
losetup:mount umount:mount ip:iproute2 modprobe:kmod"

missing=
for pair in $need; do
	cmd=${pair%%:*}
	pkg=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-test-deps.sh: missing packages:$missing; run as root or: apt-get install$missing" >&2
	exit 1
fi
echo "install-test-deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # $missing is a list of package names
apt-get install -y -qq --no-install-recommends $missing >/dev/null
