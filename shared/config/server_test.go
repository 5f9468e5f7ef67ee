package config

import (
	"crypto/tls"
	"strings"
	"testing"
)

func TestServerKeywords(t *testing.T) {
	tests := []struct {
		name, conf string
		wantErr    string // "" for success
	}{
		{"minimal", "listen 127.0.0.1:9001\ntls_certificate /c.pem\ntls_key /k.pem\n", ""},
		{"management network", "listen 192.168.204.2:9001\nmanagement_network 192.168.204.0/24\ntls_certificate /c.pem\ntls_key /k.pem\n", ""},
		{"outside networks", "listen 192.168.204.2:9001\ntls_certificate /c.pem\ntls_key /k.pem\n", "management_network"},
		{"wildcard", "listen 0.0.0.0:9001\ntls_certificate /c.pem\ntls_key /k.pem\n", "listen"},
		{"no listen", "tls_certificate /c.pem\ntls_key /k.pem\n", "missing required keyword listen"},
		{"no key", "listen 127.0.0.1:9001\ntls_certificate /c.pem\n", "missing required keyword tls_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DefaultServer()
			if err := Parse("t.conf", strings.NewReader(tt.conf), s.Keywords()); err != nil {
				t.Fatal(err)
			}
			errs := s.Validate()
			switch {
			case tt.wantErr == "" && len(errs) > 0:
				t.Fatalf("unexpected errors %v", errs)
			case tt.wantErr != "" && (len(errs) == 0 || !strings.Contains(errs[0].Error(), tt.wantErr)):
				t.Fatalf("errors %v, want %q", errs, tt.wantErr)
			case tt.wantErr == "" && (s.MinTLS != tls.VersionTLS12 || !s.Listen.IsValid() || s.LogFormat != "text"):
				t.Fatalf("defaults not applied: %+v", s)
			}
		})
	}
	s := DefaultServer()
	Parse("t.conf", strings.NewReader("listen [::1]:9001\ntls_certificate /c\ntls_key /k\ntls_min_version 1.3\n"), s.Keywords())
	if errs := s.Validate(); len(errs) > 0 || s.MinTLS != tls.VersionTLS13 || s.Listen.Port() != 9001 {
		t.Fatalf("tls 1.3 / IPv6: %v %+v", errs, s)
	}
}
