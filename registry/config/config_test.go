package config

import (
	"crypto/tls"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"stx-registry/shared/config"
	"testing"
	"time"
)

// baseConfig has every required keyword and nothing else.
var baseConfig = map[string]string{
	"listen":            "127.0.0.1:9001",
	"tls_certificate":   "/etc/stx-registry/tls.crt",
	"tls_key":           "/etc/stx-registry/tls.key",
	"token_realm":       "https://registry.local:9002/token/",
	"token_service":     "registry.local:9001",
	"token_issuer":      "bird-token-server",
	"token_certificate": "/etc/stx-registry/token.crt",
}

// configText renders baseConfig with changes applied: a value replaces
// the keyword's line, "" removes it; extra lines are appended verbatim.
func configText(changes map[string]string, extra ...string) string {
	var b strings.Builder
	b.WriteString("# stx-registry test configuration\n\n")
	for _, k := range []string{"listen", "tls_certificate", "tls_key", "token_realm", "token_service", "token_issuer", "token_certificate"} {
		v := baseConfig[k]
		if c, ok := changes[k]; ok {
			v = c
		}
		if v != "" {
			b.WriteString(k + " " + v + "\n")
		}
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func TestConfigDefaults(t *testing.T) {
	c, err := Parse("test.conf", strings.NewReader(configText(nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Server: config.Server{
			ListenAddr:     "127.0.0.1:9001",
			Listen:         netip.MustParseAddrPort("127.0.0.1:9001"),
			TLSCertificate: "/etc/stx-registry/tls.crt",
			TLSKey:         "/etc/stx-registry/tls.key",
			TLSMinVersion:  "1.2",
			MinTLS:         tls.VersionTLS12,
			LogFormat:      "text",
			LogLevel:       "info",
		},
		RootDirectory:    "/var/lib/docker-distribution",
		RequireMount:     true,
		ReadOnly:         false,
		TokenRealm:       "https://registry.local:9002/token/",
		TokenService:     "registry.local:9001",
		TokenIssuer:      "bird-token-server",
		TokenCertificate: "/etc/stx-registry/token.crt",
	}
	if c.ListenAddr != want.ListenAddr || c.Listen != want.Listen || c.TLSCertificate != want.TLSCertificate ||
		c.TLSKey != want.TLSKey || c.TLSMinVersion != want.TLSMinVersion || c.MinTLS != want.MinTLS ||
		c.LogFormat != want.LogFormat || c.LogLevel != want.LogLevel || c.RootDirectory != want.RootDirectory ||
		c.RequireMount != want.RequireMount || c.ReadOnly != want.ReadOnly || c.TokenRealm != want.TokenRealm ||
		c.TokenService != want.TokenService || c.TokenIssuer != want.TokenIssuer ||
		c.TokenCertificate != want.TokenCertificate || len(c.ManagementNetworks) != 0 {
		t.Errorf("defaults:\n got %+v\nwant %+v", *c, want)
	}
}

func TestConfigKeywords(t *testing.T) {
	tests := []struct {
		name    string
		changes map[string]string
		extra   []string
		wantErr string // substring; "" means success
		check   func(*Config) bool
	}{
		// listen and management_network
		{name: "listen ipv6 loopback", changes: map[string]string{"listen": "[::1]:9001"},
			check: func(c *Config) bool { return c.Listen == netip.MustParseAddrPort("[::1]:9001") }},
		{name: "listen in management network", changes: map[string]string{"listen": "192.168.204.2:9001"},
			extra: []string{"management_network 192.168.204.0/24"},
			check: func(c *Config) bool { return c.Listen.Addr() == netip.MustParseAddr("192.168.204.2") }},
		{name: "listen ipv6 without brackets", changes: map[string]string{"listen": "fd00::2:9001"},
			wantErr: "listen"},
		{name: "two management networks", changes: map[string]string{"listen": "[fd00::2]:9001"},
			extra: []string{"management_network 192.168.204.0/24", "management_network fd00::/64"},
			check: func(c *Config) bool { return len(c.ManagementNetworks) == 2 }},
		{name: "listen outside management network", changes: map[string]string{"listen": "10.0.0.5:9001"},
			extra: []string{"management_network 192.168.204.0/24"}, wantErr: "10.0.0.5"},
		{name: "listen wildcard", changes: map[string]string{"listen": "0.0.0.0:9001"}, wantErr: "listen"},
		{name: "listen host name", changes: map[string]string{"listen": "registry.local:9001"}, wantErr: "listen"},
		{name: "listen port 0", changes: map[string]string{"listen": "127.0.0.1:0"}, wantErr: "listen"},
		{name: "management network unmasked", extra: []string{"management_network 192.168.204.1/24"}, wantErr: "management_network"},
		{name: "management network garbage", extra: []string{"management_network lan"}, wantErr: "management_network"},

		// TLS
		{name: "tls_certificate relative", changes: map[string]string{"tls_certificate": "tls.crt"}, wantErr: "tls_certificate"},
		{name: "tls_key unclean", changes: map[string]string{"tls_key": "/etc//tls.key"}, wantErr: "tls_key"},
		{name: "tls_min_version 1.3", extra: []string{"tls_min_version 1.3"},
			check: func(c *Config) bool { return c.MinTLS == tls.VersionTLS13 }},
		{name: "tls_min_version 1.1", extra: []string{"tls_min_version 1.1"}, wantErr: "tls_min_version"},

		// logs
		{name: "log_format json", extra: []string{"log_format json"}, check: func(c *Config) bool { return c.LogFormat == "json" }},
		{name: "log_format xml", extra: []string{"log_format xml"}, wantErr: "log_format"},
		{name: "log_level debug", extra: []string{"log_level debug"}, check: func(c *Config) bool { return c.LogLevel == "debug" }},
		{name: "log_level warn", extra: []string{"log_level warn"}, check: func(c *Config) bool { return c.LogLevel == "warn" }},
		{name: "log_level trace", extra: []string{"log_level trace"}, wantErr: "log_level"},

		// storage
		{name: "storage_reserve percent", extra: []string{"storage_reserve 10%"},
			check: func(c *Config) bool { return c.StorageReserve.For(1000) == 100 }},
		{name: "storage_reserve size", extra: []string{"storage_reserve 512M"},
			check: func(c *Config) bool { return c.StorageReserve.For(1<<40) == 512<<20 }},
		{name: "storage_reserve off", extra: []string{"storage_reserve 0"},
			check: func(c *Config) bool { return c.StorageReserve.For(1<<40) == 0 }},
		{name: "storage_reserve default", check: func(c *Config) bool {
			return c.StorageReserve.For(100<<30) == 5<<30 && c.StorageReserve.For(4<<30) == 1<<30 && c.StorageReserve.For(1<<30) == 512<<20
		}},
		{name: "storage_reserve 95%", extra: []string{"storage_reserve 95%"}, wantErr: "storage_reserve"},
		{name: "storage_reserve unit", extra: []string{"storage_reserve 2GB"}, wantErr: "storage_reserve"},
		{name: "storage_reserve negative", extra: []string{"storage_reserve -1"}, wantErr: "storage_reserve"},
		{name: "gc_grace", extra: []string{"gc_grace 5s"}, check: func(c *Config) bool { return c.GCGrace == 5*time.Second }},
		{name: "gc_grace default", check: func(c *Config) bool { return c.GCGrace == time.Hour }},
		{name: "gc_grace zero", extra: []string{"gc_grace 0s"}, wantErr: "gc_grace"},
		{name: "metrics_network default", check: func(c *Config) bool { return len(c.MetricsNetworks) == 2 }},
		{name: "metrics_network", extra: []string{"metrics_network 192.168.204.2/32"},
			check: func(c *Config) bool { return len(c.MetricsNetworks) == 1 }},
		{name: "metrics_network unmasked", extra: []string{"metrics_network 10.0.0.1/8"}, wantErr: "metrics_network"},
		{name: "root_directory", extra: []string{"root_directory /srv/registry"},
			check: func(c *Config) bool { return c.RootDirectory == "/srv/registry" }},
		{name: "root_directory relative", extra: []string{"root_directory srv/registry"}, wantErr: "root_directory"},
		{name: "require_mount no", extra: []string{"require_mount no"}, check: func(c *Config) bool { return !c.RequireMount }},
		{name: "require_mount true", extra: []string{"require_mount true"}, wantErr: "require_mount"},
		{name: "read_only yes", extra: []string{"read_only yes"}, check: func(c *Config) bool { return c.ReadOnly }},
		{name: "read_only 1", extra: []string{"read_only 1"}, wantErr: "read_only"},

		// token
		{name: "realm http", changes: map[string]string{"token_realm": "http://registry.local:9002/token/"},
			wantErr: `token_realm must be an https URL with a host, got "http://registry.local:9002/token/"`},
		{name: "realm without host", changes: map[string]string{"token_realm": "https:///token/"}, wantErr: "token_realm"},
		{name: "realm relative", changes: map[string]string{"token_realm": "/token/"}, wantErr: "token_realm"},
		{name: "realm with user info", changes: map[string]string{"token_realm": "https://u:secret@registry.local/token/"},
			wantErr: "user information"},
		{name: "realm with quote", changes: map[string]string{"token_realm": `https://registry.local/"token`}, wantErr: "token_realm"},
		{name: "realm ipv6", changes: map[string]string{"token_realm": "https://[fd00::1]:9002/token/"},
			check: func(c *Config) bool { return c.TokenRealm == "https://[fd00::1]:9002/token/" }},
		{name: "service with blank", changes: map[string]string{"token_service": "registry local"}, wantErr: "token_service"},
		{name: "issuer with quote", changes: map[string]string{"token_issuer": `bird"token`}, wantErr: "token_issuer"},
		{name: "token_certificate relative", changes: map[string]string{"token_certificate": "token.crt"}, wantErr: "token_certificate"},

		// structure
		{name: "unknown keyword", extra: []string{"storage s3"}, wantErr: `unknown keyword "storage"`},
		{name: "duplicate", extra: []string{"listen 127.0.0.1:9002"}, wantErr: "listen"},
		{name: "duplicate read_only", extra: []string{"read_only yes", "read_only no"}, wantErr: "read_only"},
		{name: "keyword without value", extra: []string{"read_only"}, wantErr: "read_only"},
	}
	for _, k := range []string{"listen", "tls_certificate", "tls_key", "token_realm", "token_service", "token_issuer", "token_certificate"} {
		tests = append(tests, struct {
			name    string
			changes map[string]string
			extra   []string
			wantErr string
			check   func(*Config) bool
		}{name: "missing " + k, changes: map[string]string{k: ""}, wantErr: "missing required keyword " + k})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("test.conf", strings.NewReader(configText(tt.changes, tt.extra...)))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want one containing %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "test.conf") {
					t.Fatalf("error %q, want it to start with the file name and contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q echoes a password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("unexpected config %+v", *c)
			}
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.conf")
	if err := os.WriteFile(good, []byte(configText(nil)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Errorf("Load: %v", err)
	}
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte(configText(map[string]string{"token_realm": "http://x/"})), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.HasPrefix(err.Error(), bad+": token_realm") {
		t.Errorf("Load(bad) = %v, want an error naming the file and token_realm", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.conf")); err == nil {
		t.Error("Load(missing) succeeded")
	}
}

func TestExampleConfig(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "stx-registry.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != netip.MustParseAddrPort("192.168.204.2:9001") || len(c.ManagementNetworks) != 2 ||
		c.LogFormat != "json" || !c.RequireMount || c.ReadOnly {
		t.Errorf("unexpected config %+v", *c)
	}
}

func FuzzParseConfig(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "stx-registry.conf")); err == nil {
		f.Add(string(data))
	}
	f.Add(configText(nil))
	f.Add(configText(nil, "management_network 192.168.204.0/24", "read_only yes", "log_format json"))
	f.Add(configText(map[string]string{"token_realm": "http://x/"}))
	f.Add(configText(map[string]string{"listen": "[::1]:9001"}, "tls_min_version 1.3"))
	f.Add("listen\t127.0.0.1:9001\n#c\n\n   # c\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse("fuzz.conf", strings.NewReader(text))
		if err != nil {
			return
		}
		// Whatever parses must satisfy the validation rules.
		if !c.Listen.IsValid() || c.Listen.Port() == 0 || c.Listen.Addr().IsUnspecified() {
			t.Fatalf("accepted listen %q", c.ListenAddr)
		}
		if !strings.HasPrefix(c.TokenRealm, "https://") {
			t.Fatalf("accepted realm %q", c.TokenRealm)
		}
		for _, p := range []string{c.TLSCertificate, c.TLSKey, c.TokenCertificate, c.RootDirectory} {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p {
				t.Fatalf("accepted path %q", p)
			}
		}
	})
}

// TestConfigAllErrors checks that validation reports every problem at
// once, each on its own line naming the file.
func TestConfigAllErrors(t *testing.T) {
	text := configText(map[string]string{"token_realm": "http://x/", "token_issuer": "", "token_service": `a"b`})
	_, err := Parse("test.conf", strings.NewReader(text))
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"missing required keyword token_issuer", "token_realm must be an https URL", "token_service must not contain quotes"}
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], "test.conf: ") || !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %q, want test.conf: ...%s", i+1, lines[i], w)
		}
	}
}

func TestKeywords(t *testing.T) {
	got := strings.Join(Keywords(), " ")
	want := "listen management_network tls_certificate tls_key tls_min_version log_format log_level " +
		"root_directory require_mount read_only storage_reserve gc_grace metrics_network token_realm token_service token_issuer token_certificate"
	if got != want {
		t.Errorf("Keywords() = %s\nwant %s", got, want)
	}
}
