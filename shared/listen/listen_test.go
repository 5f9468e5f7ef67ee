package listen

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
)

var mgmt = []netip.Prefix{
	netip.MustParsePrefix("192.168.204.0/24"),
	netip.MustParsePrefix("fd00:204::/64"),
}

func TestCheck(t *testing.T) {
	tests := []struct {
		addr string
		nets []netip.Prefix
		want string // the AddrPort, or a substring of the error
		ok   bool
	}{
		{"192.168.204.2:9001", mgmt, "192.168.204.2:9001", true},
		{"[fd00:204::2]:9001", mgmt, "[fd00:204::2]:9001", true},
		{"127.0.0.1:9001", nil, "127.0.0.1:9001", true},
		{"127.9.9.9:9001", nil, "127.9.9.9:9001", true},
		{"[::1]:9001", nil, "[::1]:9001", true},
		{"[::ffff:192.168.204.2]:9001", mgmt, "192.168.204.2:9001", true},
		{"[::ffff:127.0.0.1]:9001", nil, "127.0.0.1:9001", true},

		{"10.0.0.5:9001", mgmt[:1], "listen 10.0.0.5:9001: address is not in management_network 192.168.204.0/24 and not loopback", false},
		{"10.0.0.5:9001", mgmt, "not in management_network 192.168.204.0/24, fd00:204::/64 and not loopback", false},
		{"10.0.0.5:9001", nil, "no management_network is configured", false},
		{"[::ffff:10.0.0.5]:9001", mgmt, "not in management_network", false},
		{"0.0.0.0:9001", mgmt, "wildcard address not allowed", false},
		{"[::]:9001", mgmt, "wildcard address not allowed", false},
		{"[::ffff:0.0.0.0]:9001", mgmt, "wildcard address not allowed", false},
		{":9001", mgmt, "no IP address", false},
		{"localhost:9001", mgmt, `"localhost" is not an IP address`, false},
		{"controller.internal:9001", mgmt, "host names are not allowed", false},
		{"192.168.204.2", mgmt, "give IP:port", false},
		{"::1:9001", mgmt, "give IP:port", false},
		{"192.168.204.2:0", mgmt, "port 0 not allowed", false},
		{"192.168.204.2:", mgmt, "bad port", false},
		{"192.168.204.2:65536", mgmt, "bad port", false},
		{"192.168.204.2:https", mgmt, "bad port", false},
		{"192.168.204.02:9001", mgmt, "is not an IP address", false},
		{"[fe80::1%eth0]:9001", []netip.Prefix{netip.MustParsePrefix("fe80::/10")}, "zone are not allowed", false},
		{"[::1%lo]:9001", nil, "zone are not allowed", false},
		{strings.Repeat("1", 100) + ":1", nil, "longer than", false},
	}
	for _, tt := range tests {
		got, err := Check(tt.addr, tt.nets)
		switch {
		case tt.ok && err != nil:
			t.Errorf("Check(%q): %v", tt.addr, err)
		case tt.ok && got.String() != tt.want:
			t.Errorf("Check(%q) = %v, want %s", tt.addr, got, tt.want)
		case !tt.ok && err == nil:
			t.Errorf("Check(%q) = %v, want error %q", tt.addr, got, tt.want)
		case !tt.ok && !strings.Contains(err.Error(), tt.want):
			t.Errorf("Check(%q) error %q, want it to contain %q", tt.addr, err, tt.want)
		}
	}
}

func TestListen(t *testing.T) {
	tests := []struct {
		addr    string
		network string
	}{
		{"127.0.0.1:0", "tcp4"},
		{"[::1]:0", "tcp6"},
		{"[::ffff:127.0.0.1]:0", "tcp4"},
	}
	for _, tt := range tests {
		ln, err := Listen(context.Background(), netip.MustParseAddrPort(tt.addr))
		if err != nil {
			if tt.network == "tcp6" {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Fatal(err)
		}
		got := ln.Addr().(*net.TCPAddr).AddrPort()
		want := netip.MustParseAddrPort(tt.addr).Addr().Unmap()
		if got.Addr() != want || got.Port() == 0 {
			t.Errorf("Listen(%s) is on %v", tt.addr, got)
		}
		c, err := net.Dial(tt.network, ln.Addr().String())
		if err != nil {
			t.Errorf("dial %s: %v", ln.Addr(), err)
		} else {
			c.Close()
		}
		// The same address again must fail: nothing is shared or reused.
		if ln2, err := Listen(context.Background(), got); err == nil {
			ln2.Close()
			t.Errorf("second Listen on %v succeeded", got)
		} else if !strings.Contains(err.Error(), got.String()) {
			t.Errorf("error %q does not name %v", err, got)
		}
		ln.Close()
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"192.168.204.2:9001", "[fd00:204::2]:9001", "[::1]:9001", "127.0.0.1:9002",
		"0.0.0.0:9001", "[::ffff:10.0.0.5]:9001", "[fe80::1%eth0]:1", "localhost:80", ":1", "1.2.3.4:0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		ap, err := Check(addr, mgmt)
		if err != nil {
			return
		}
		ip := ap.Addr()
		if !ap.IsValid() || ap.Port() == 0 || ip.IsUnspecified() || ip.Zone() != "" || ip.Is4In6() {
			t.Fatalf("Check(%q) accepted %v", addr, ap)
		}
		if !ip.IsLoopback() && !mgmt[0].Contains(ip) && !mgmt[1].Contains(ip) {
			t.Fatalf("Check(%q) accepted %v outside the networks", addr, ap)
		}
	})
}
