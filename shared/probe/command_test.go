package probe

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"stx-registry/shared/tlsconf/tlstest"
)

func TestCommandMain(t *testing.T) {
	ca := tlstest.NewCA(t)
	up, upCert, _ := server(t, ca, healthy)
	sick, sickCert, _ := server(t, ca, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	down := refusedAddr(t)
	targets := map[string]struct {
		addr netip.AddrPort
		cert string
	}{"up": {up, upCert}, "sick": {sick, sickCert}, "down": {down, upCert}}
	cmd := Command{
		Name: "stx-test",
		Load: func(file string) (netip.AddrPort, string, error) {
			tg, ok := targets[file]
			if !ok {
				return netip.AddrPort{}, "", errors.New("no such config")
			}
			return tg.addr, tg.cert, nil
		},
		Check: func(file string) error {
			if file != "up" {
				return errors.New("bad config")
			}
			return nil
		},
	}
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-f", "up"}, ExitHealthy, ""},
		{[]string{"-f", "sick"}, ExitFailed, "503"},
		{[]string{"-f", "down"}, ExitNotRunning, "not running"},
		{[]string{"-f", "missing"}, ExitFailed, "no such config"},
		{[]string{"-n", "-f", "up"}, ExitHealthy, ""},
		{[]string{"-n", "-f", "down"}, ExitFailed, "bad config"},
		{[]string{"-timeout", "0s", "-f", "up"}, ExitUsage, "-timeout"},
		{[]string{"-f", "up", "extra"}, ExitUsage, "unexpected argument"},
		{[]string{"-x"}, ExitUsage, "usage: stx-test probe [-n]"},
	}
	for _, tt := range tests {
		var stderr strings.Builder
		if code := cmd.Main(tt.args, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.msg) {
			t.Errorf("%v: exit %d %q, want %d containing %q", tt.args, code, stderr.String(), tt.code, tt.msg)
		}
		if tt.code == ExitHealthy && stderr.Len() > 0 {
			t.Errorf("%v: healthy probe wrote %q", tt.args, stderr.String())
		}
	}
	cmd.Check = nil
	var stderr strings.Builder
	if code := cmd.Main([]string{"-n", "-f", "up"}, &stderr); code != ExitUsage {
		t.Errorf("-n without a Check: exit %d", code)
	}
}
