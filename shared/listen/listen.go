// Package listen checks and opens the daemons' TCP listening addresses. A
// daemon listens only on an explicit IP address that is either loopback or
// inside one of the configured management networks: never on a wildcard
// address, never on a host name (which could resolve elsewhere), and never on
// port 0. Check validates an address from the configuration file; Listen opens
// exactly the address Check returned.
package listen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// MaxAddrBytes bounds an address string. The longest sensible form,
// "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", has 53 bytes.
const MaxAddrBytes = 64

// Check parses addr, given as "IP:port" or "[IPv6]:port", and returns it if
// the daemon may listen there. An IPv4-mapped IPv6 address is treated, and
// returned, as the IPv4 address it maps.
func Check(addr string, nets []netip.Prefix) (netip.AddrPort, error) {
	if len(addr) > MaxAddrBytes {
		return netip.AddrPort{}, fmt.Errorf("listen address longer than %d bytes", MaxAddrBytes)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen %s: give IP:port, like 192.168.204.2:9001 or [::1]:9001", addr)
	}
	if host == "" {
		return netip.AddrPort{}, fmt.Errorf("listen %s: no IP address, give the management IP", addr)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen %s: %q is not an IP address, host names are not allowed", addr, host)
	}
	portNum, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen %s: bad port %q, give 1 to 65535", addr, port)
	}
	ip = ip.Unmap()
	switch {
	case ip.Zone() != "":
		return netip.AddrPort{}, fmt.Errorf("listen %s: addresses with a zone are not allowed", addr)
	case ip.IsUnspecified():
		return netip.AddrPort{}, fmt.Errorf("listen %s: wildcard address not allowed, give the management IP", addr)
	case portNum == 0:
		return netip.AddrPort{}, fmt.Errorf("listen %s: port 0 not allowed, give a fixed port", addr)
	}
	ap := netip.AddrPortFrom(ip, uint16(portNum))
	if ip.IsLoopback() {
		return ap, nil
	}
	for _, p := range nets {
		if p.Contains(ip) {
			return ap, nil
		}
	}
	if len(nets) == 0 {
		return netip.AddrPort{}, fmt.Errorf("listen %s: address is not loopback and no management_network is configured", addr)
	}
	names := make([]string, len(nets))
	for i, p := range nets {
		names[i] = p.String()
	}
	return netip.AddrPort{}, fmt.Errorf("listen %s: address is not in management_network %s and not loopback",
		addr, strings.Join(names, ", "))
}

// Listen opens a TCP listener on exactly ap: tcp4 for an IPv4 address, tcp6
// (IPv6 only, no mapped IPv4) otherwise.
func Listen(ctx context.Context, ap netip.AddrPort) (net.Listener, error) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	network := "tcp6"
	if ap.Addr().Is4() {
		network = "tcp4"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, ap.String())
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", ap, err)
	}
	return ln, nil
}
