package listen

import (
	"net/http"
	"net/netip"
)

// Loopback is the default allow-list of metrics_network: loopback only.
var Loopback = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// Peer is the request's TCP peer address (never a forwarded header), with
// an IPv4-mapped IPv6 address unmapped; invalid if RemoteAddr is not an
// address.
func Peer(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// PeerIn reports whether the request's TCP peer lies in one of nets: the
// rule of metrics_network in both daemons.
func PeerIn(r *http.Request, nets []netip.Prefix) bool {
	a := Peer(r)
	if !a.IsValid() {
		return false
	}
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
