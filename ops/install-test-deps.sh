#!/bin/sh
# install-test-deps.sh: install, as root with apt-get, the Debian packages that
# "make check" and "make test" drive for real. Packages already present are
# not touched; nothing is downloaded outside Debian's archive.
set -eu

# command:package pairs.
need="skopeo:skopeo podman:podman ctr:containerd containerd:containerd
shellcheck:shellcheck mandoc:mandoc openssl:openssl xmllint:libxml2-utils
keystone-wsgi-public:keystone ocf-tester:resource-agents mkfs.ext4:e2fsprogs
losetup:mount umount:mount ip:iproute2 modprobe:kmod
dockerd:docker.io docker:docker.io unshare:util-linux"

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

# Installing docker.io starts a system dockerd (iptables rules, a docker0
# bridge, /run/docker.sock) and enables it at boot. The tests run their own
# dockerd and never use the system one, so keep it off: masked for this boot
# during the installation, then disabled. Without systemd, Debian's
# policy-rc.d (containers have one) decides, as for every package.
systemd=
case " $missing " in
*" docker.io "*) if [ -d /run/systemd/system ]; then systemd=yes; fi ;;
esac
if [ -n "$systemd" ]; then
	systemctl mask --runtime --quiet docker.service docker.socket
	trap 'systemctl unmask --runtime --quiet docker.service docker.socket' EXIT
fi
# shellcheck disable=SC2086 # $missing is a list of package names
apt-get install -y -qq --no-install-recommends $missing >/dev/null
if [ -n "$systemd" ]; then
	systemctl disable --quiet docker.service docker.socket
	echo "install-test-deps.sh: the system dockerd is disabled (the tests run their own): systemctl enable --now docker.socket turns it on" >&2
fi
