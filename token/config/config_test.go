package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/authn"
	"stx-registry/token/internal/fixture"
	"stx-registry/token/issuer"
	"stx-registry/token/refresh"
)

func loadString(t *testing.T, s string) (*Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stx-token-server.conf")
	os.WriteFile(p, []byte(s), 0o600)
	return Load(p)
}

func TestConfig(t *testing.T) {
	c, err := loadString(t, fixture.GoodConfig)
	if err != nil {
		t.Fatal(err)
	}
	if c.TokenTTL != issuer.DefaultTokenTTL || c.CacheTTL != authn.DefaultCacheTTL || c.CacheSize != authn.DefaultCacheSize ||
		c.AuthBackend != "users" || c.TLSMinVersion != "1.2" || len(c.PublicNamespaces) != 1 || c.PublicNamespaces[0] != "public" {
		t.Errorf("defaults not applied: %+v", c)
	}
	if len(c.Services) != 2 || len(c.AdminUsers) != 2 || c.Listen.Port() != 9002 {
		t.Errorf("parsed %+v", c)
	}
	pol, err := access.NewPolicy(access.PolicyConfig{ReservedNamespaces: c.ReservedNamespaces, PublicNamespaces: c.PublicNamespaces})
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := pol.Grant(access.Identity{Name: "docker.io"}, []access.Access{{Type: "repository", Name: "docker.io/nginx", Actions: []string{"push"}}}); len(g) != 0 {
		t.Errorf("user docker.io owns the docker.io mirror: %v", g)
	}
	c, err = loadString(t, fixture.GoodConfig+"reserved_namespace docker.io\ntoken_ttl 10m\npublic_namespace shared\n")
	if err != nil || c.TokenTTL != 10*time.Minute || c.PublicNamespaces[0] != "shared" {
		t.Errorf("overrides: %v %+v", err, c)
	}
}

func TestConfigErrors(t *testing.T) {
	without := func(kw string) string {
		var out []string
		for _, l := range strings.Split(fixture.GoodConfig, "\n") {
			if !strings.HasPrefix(l, kw+" ") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	tests := []struct{ name, conf, want string }{
		{"unknown keyword", fixture.GoodConfig + "lsten 1.2.3.4:1\n", `unknown keyword "lsten"`},
		{"duplicate", fixture.GoodConfig + "issuer other\n", "duplicate"},
		{"ttl too short", fixture.GoodConfig + "token_ttl 30s\n", "token_ttl"},
		{"ttl not a duration", fixture.GoodConfig + "token_ttl soon\n", "token_ttl"},
		{"relative path", fixture.GoodConfig + "tls_ca x.pem\n", "unknown keyword"},
		{"relative key", strings.Replace(fixture.GoodConfig, "/etc/stx/token.key", "token.key", 1), "signing_key"},
		{"wildcard listen", strings.Replace(fixture.GoodConfig, "127.0.0.1:9002", "0.0.0.0:9002", 1), "listen"},
		{"listen outside networks", strings.Replace(fixture.GoodConfig, "127.0.0.1:9002", "192.168.204.2:9002", 1), "management_network"},
		{"no service", without("service"), "service is required"},
		{"no issuer", without("issuer"), "issuer is required"},
		{"no signing key", without("signing_key"), "signing_key is required"},
		{"no users file", without("users_file"), "users_file is required"},
		{"duplicate service", fixture.GoodConfig + "service registry.local:9001\n", "listed twice"},
		{"bad backend", fixture.GoodConfig + "auth_backend ldap\n", "auth_backend"},
		{"bad tls version", fixture.GoodConfig + "tls_min_version 1.0\n", "tls_min_version"},
		{"backoff_free zero", fixture.GoodConfig + "backoff_free 0\n", "backoff_free"},
		{"backoff_max too long", fixture.GoodConfig + "backoff_max 2h\n", "backoff_max"},
		{"lockout one", fixture.GoodConfig + "keystone_lockout_attempts 1\n", "keystone_lockout_attempts 1"},
		{"lockout negative", fixture.GoodConfig + "keystone_lockout_attempts -1\n", "keystone_lockout_attempts"},
		{"lockout window short", fixture.GoodConfig + "keystone_lockout_window 10s\n", "keystone_lockout_window"},
		{"metrics network unmasked", fixture.GoodConfig + "metrics_network 10.0.0.1/8\n", "metrics_network"},
		{"spray one", fixture.GoodConfig + "backoff_spray_users 1\n", "backoff_spray_users"},
		{"spray too many", fixture.GoodConfig + "backoff_spray_users 65\n", "backoff_spray_users"},
		{"concurrency zero", fixture.GoodConfig + "backend_concurrency 0\n", "backend_concurrency"},
		{"queue zero", fixture.GoodConfig + "backend_queue 0\n", "backend_queue"},
		{"per user zero", fixture.GoodConfig + "backend_per_user 0\n", "backend_per_user"},
		{"per address above concurrency", fixture.GoodConfig + "backend_per_address 9\n", "backend_per_address 9 is above backend_concurrency 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadString(t, tt.conf)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	// A listen address inside a management network is fine.
	if _, err := loadString(t, strings.Replace(fixture.GoodConfig, "127.0.0.1:9002", "192.168.204.2:9002", 1)+"management_network 192.168.204.0/24\n"); err != nil {
		t.Errorf("management network: %v", err)
	}
}

func TestConfigBackoff(t *testing.T) {
	c, err := loadString(t, fixture.GoodConfig)
	if err != nil {
		t.Fatal(err)
	}
	if c.BackoffFree != 3 || c.BackoffMax != 5*time.Minute || c.KeystoneLockoutAttempts != 5 ||
		c.KeystoneLockoutWindow != 0 || len(c.MetricsNetworks) != 2 || !c.MetricsNetworks[0].Addr().IsLoopback() {
		t.Errorf("defaults: %+v", c)
	}
	// The lockout cap is for Keystone only.
	if bc := c.BackoffConfig(); bc.LockoutAttempts != 0 || bc.Free != 3 || bc.Max != 5*time.Minute {
		t.Errorf("users backend: %+v", bc)
	}
	ks := strings.Replace(fixture.GoodConfig, "users_file /etc/stx/users\n", "auth_backend keystone\nkeystone_url https://controller:5000/v3\n", 1)
	c, err = loadString(t, ks+"backoff_free 5\nbackoff_max 1m\nbackoff_spray_users 20\nkeystone_lockout_attempts 0\nkeystone_lockout_window 1h\n"+
		"backend_concurrency 8\nbackend_queue 100\nbackend_per_user 2\nbackend_per_address 3\nmetrics_network 192.168.204.0/24\nmetrics_network fd00::/64\n")
	if err != nil {
		t.Fatal(err)
	}
	want := authn.BackoffConfig{Free: 5, Max: time.Minute, SprayUsers: 20, LockoutAttempts: 0, PerUser: 2, PerAddress: 3}
	if gc := c.GateConfig(10 * time.Second); gc != (authn.GateConfig{Concurrency: 8, Queue: 100, Wait: 4 * time.Second}) {
		t.Errorf("gate: %+v", gc)
	}
	if bc := c.BackoffConfig(); bc != want || len(c.MetricsNetworks) != 2 || c.MetricsNetworks[1].String() != "fd00::/64" {
		t.Errorf("keystone: %+v %v", bc, c.MetricsNetworks)
	}
	c, err = loadString(t, ks)
	if err != nil {
		t.Fatal(err)
	}
	if bc := c.BackoffConfig(); bc != defaultBackoff {
		t.Errorf("keystone defaults %+v, want %+v", bc, defaultBackoff)
	}
}

func TestConfigRefresh(t *testing.T) {
	ks := strings.Replace(fixture.GoodConfig, "users_file /etc/stx/users\n", "auth_backend keystone\nkeystone_url https://controller:5000/v3\n", 1)
	svc := "keystone_service_user registry\nkeystone_service_password_file /etc/stx/registry-pw\nkeystone_service_project services\n"
	tests := []struct {
		name, conf string
		ttl        time.Duration // want, when no error
		want       string        // error substring
	}{
		{"users default", fixture.GoodConfig + "state_directory /var/lib/stx\n", refresh.DefaultRefreshTokenTTL, ""},
		{"users 90 days", fixture.GoodConfig + "refresh_token_ttl 2160h\n", refresh.MaxRefreshTokenTTL, ""},
		{"keystone default without service user", ks, refresh.MaxUncheckedRefreshTTL, ""},
		{"keystone default with service user", ks + svc, refresh.DefaultRefreshTokenTTL, ""},
		{"keystone 24h", ks + "refresh_token_ttl 24h\n", 24 * time.Hour, ""},
		{"keystone over 24h", ks + "refresh_token_ttl 25h\n", 0, "the maximum is 24h"},
		{"over 90 days", fixture.GoodConfig + "refresh_token_ttl 2161h\n", 0, "refresh_token_ttl"},
		{"under a minute", fixture.GoodConfig + "refresh_token_ttl 59s\n", 0, "refresh_token_ttl"},
		{"relative state directory", fixture.GoodConfig + "state_directory state\n", 0, "state_directory"},
		{"max zero", fixture.GoodConfig + "refresh_token_max 0\n", 0, "refresh_token_max"},
		{"user max zero", fixture.GoodConfig + "refresh_token_user_max 0\n", 0, "refresh_token_user_max"},
		{"client max too big", fixture.GoodConfig + "refresh_token_client_max 1000001\n", 0, "refresh_token_client_max"},
		{"service user alone", ks + "keystone_service_user registry\n", 0, "give all three or none"},
		{"service user with users backend", fixture.GoodConfig + svc, 0, "needs auth_backend keystone"},
		{"recheck too short", ks + svc + "keystone_recheck_interval 30s\n", 0, "keystone_recheck_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadString(t, tt.conf)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.RefreshLimits() != refresh.DefaultLimits {
				t.Errorf("limits %+v, want %+v", c.RefreshLimits(), refresh.DefaultLimits)
			}
			if c.RefreshTokenTTL != tt.ttl || c.RefreshTokenMax != refresh.DefaultRefreshTokenMax ||
				c.KeystoneRecheckInterval != 15*time.Minute || c.KeystoneServiceDomain != "Default" {
				t.Errorf("ttl %v max %d recheck %v domain %q", c.RefreshTokenTTL, c.RefreshTokenMax, c.KeystoneRecheckInterval, c.KeystoneServiceDomain)
			}
		})
	}
}

// defaultBackoff is the backoff with every keyword at its default.
var defaultBackoff = authn.BackoffConfig{
	Free:            authn.DefaultBackoffFree,
	Max:             authn.DefaultBackoffMax,
	SprayUsers:      authn.DefaultSprayUsers,
	LockoutAttempts: authn.DefaultLockoutAttempts,
	PerUser:         authn.DefaultPerUser,
	PerAddress:      authn.DefaultPerAddress,
}

// Every keyword is listed once, the shared ones first.
func TestKeywords(t *testing.T) {
	kws := Keywords()
	seen := map[string]bool{}
	for _, kw := range kws {
		if seen[kw] {
			t.Errorf("keyword %s listed twice", kw)
		}
		seen[kw] = true
	}
	for _, kw := range []string{"listen", "service", "signing_key", "keystone_recheck_interval", "reserved_namespace"} {
		if !seen[kw] {
			t.Errorf("keyword %s missing", kw)
		}
	}
}

// Validation reports every error at once, policy errors included.
func TestConfigAllErrors(t *testing.T) {
	_, err := loadString(t, fixture.GoodConfig+"admin_role r\npublic_namespace Public\nservice registry.local:9001\n")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"admin_role and admin_project", "public_namespace", "listed twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nlacks %q", err, want)
		}
	}
}

// The per-user refresh limits are read into RefreshLimits.
func TestConfigRefreshLimits(t *testing.T) {
	c, err := loadString(t, fixture.GoodConfig+"refresh_token_max 500\nrefresh_token_user_max 7\nrefresh_token_client_max 3\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.RefreshLimits(), (refresh.Limits{Max: 500, UserMax: 7, ClientMax: 3}); got != want {
		t.Errorf("limits %+v, want %+v", got, want)
	}
}

func TestConfigReuse(t *testing.T) {
	for _, tt := range []struct {
		extra  string
		window time.Duration
	}{
		{"", 30 * time.Second}, // 10 % of the default 5m
		{"token_reuse_percent 0\n", 0},
		{"token_reuse_percent 50\ntoken_ttl 1h\n", 30 * time.Minute},
		{"token_reuse_percent 20\ntoken_ttl 2m\n", 24 * time.Second},
	} {
		c, err := loadString(t, fixture.GoodConfig+tt.extra)
		if err != nil {
			t.Fatalf("%q: %v", tt.extra, err)
		}
		if got := c.ReuseWindow(); got != tt.window {
			t.Errorf("%q: window %v, want %v", tt.extra, got, tt.window)
		}
	}
	for _, bad := range []string{"-1", "51", "10%", "ten"} {
		if _, err := loadString(t, fixture.GoodConfig+"token_reuse_percent "+bad+"\n"); err == nil || !strings.Contains(err.Error(), "token_reuse_percent") {
			t.Errorf("token_reuse_percent %s: %v", bad, err)
		}
	}
}
