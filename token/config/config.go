// Package config owns stx-token-server.conf(5): the Config struct (its
// field comments are the keyword reference), the keyword table, defaults
// and validation, which reports every error at once.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"time"

	shared "stx-registry/shared/config"
	"stx-registry/shared/listen"
	"stx-registry/token/access"
	"stx-registry/token/authn"
	"stx-registry/token/issuer"
	"stx-registry/token/refresh"
	"stx-registry/token/reuse"
)

// DefaultFile is where the daemon looks without -f.
const DefaultFile = "/etc/stx-token-server/stx-token-server.conf"

// Config is stx-token-server.conf(5). Each field names its keyword.
type Config struct {
	// Server holds the keywords both daemons share: listen,
	// management_network, tls_certificate, tls_key, tls_min_version,
	// log_format and log_level (see shared/config.Server).
	shared.Server

	// service NAME (repeatable): the audiences tokens may be issued for,
	// e.g. the registry's "registry.local:9001". Required.
	Services []string
	// issuer NAME: the "iss" claim; the registry's token_issuer. Required.
	Issuer string
	// signing_key PATH (repeatable): PEM private keys; the first signs.
	// Required, mode 0600.
	SigningKeys []string
	// token_ttl DURATION: access token lifetime, 60s to 1h. Default 5m.
	TokenTTL time.Duration
	// token_reuse_percent N: 0 to 50, default 10. A token is handed out
	// again, unchanged, to an identical request (same user, service,
	// backend admin flag and granted scopes) while it is younger than N %
	// of token_ttl and has at least 60 s left; 0 signs every token anew.
	// The window is the longest a change the server cannot see can take
	// to reach the tokens it hands out (see token/reuse).
	TokenReusePercent int

	// auth_backend users|keystone: where passwords are checked. Default
	// users.
	AuthBackend string
	// users_file PATH: bcrypt users file (auth_backend users). Required
	// for that backend, mode 0600.
	UsersFile string
	// keystone_url URL: the Keystone v3 endpoint, e.g.
	// https://controller:5000/v3. Required with auth_backend keystone;
	// plain http is allowed but logged as a warning at start.
	KeystoneURL string
	// keystone_user_domain NAME: the domain users log in to. Default
	// "Default".
	KeystoneUserDomain string
	// keystone_ca PATH: PEM CA bundle Keystone's certificate must chain
	// to. Without it, the system roots.
	KeystoneCA string
	// keystone_timeout DURATION: bound on one login's Keystone calls, 1s
	// to 8s, so that a 503 still fits in the server's 10 s write timeout
	// and docker's 15 s token timeout is never reached. Default 5s.
	KeystoneTimeout time.Duration
	// admin_role ROLE, admin_project PROJECT: a Keystone user holding ROLE
	// on PROJECT (in keystone_user_domain) is a registry admin. Both or
	// neither.
	AdminRole, AdminProject string

	// cache_ttl DURATION, cache_size N: the credential cache. A password
	// verified within cache_ttl (1s to 24h, default 5m) is accepted without
	// asking the backend, also while the backoff holds the user or the
	// backend is down; at most cache_size users (default 4096) are kept.
	CacheTTL  time.Duration
	CacheSize int

	// backoff_free N: bad passwords a user may send before it is held,
	// 1 to 100. Default 3. After the k-th failure (k ≥ N) the user is held
	// for 1s·2^(k−N) from any address, answered 429 with Retry-After
	// without asking the backend. 15 minutes without a failure forget them;
	// a success does not.
	BackoffFree int
	// backoff_max DURATION: the longest hold, 1s to 1h. Default 5m.
	BackoffMax time.Duration
	// backoff_spray_users N: distinct users that may fail from one client
	// address (IPv6: one /64) before the address itself is held, 2 to 64.
	// Default 10. Below it, one user's failures never hold back another
	// user from the same address; from the N-th distinct failing user on,
	// the address is held 1s·2^(k−N) after the k-th.
	BackoffSprayUsers int
	// keystone_lockout_attempts N: Keystone's [security_compliance]
	// lockout_failure_attempts, 0 (Keystone lockout off) or 2 to 100.
	// Default 5, as StarlingX sets it. With auth_backend keystone, after N−1
	// bad passwords for one user since the last success this server saw
	// (never forgotten with time, as in Keystone), only the password that
	// last succeeded for that user is sent to Keystone; everything else is
	// refused at once. "stx-token-server unlock USER" clears the count.
	// Ignored with auth_backend users.
	KeystoneLockoutAttempts int
	// keystone_lockout_window DURATION: no longer used (the lockout guard
	// does not expire with time); accepted so that old files still load,
	// and logged as ignored.
	KeystoneLockoutWindow time.Duration

	// backend_concurrency N: password checks (bcrypt or Keystone logins)
	// under way at once, 1 to 256. Default 4.
	BackendConcurrency int
	// backend_queue N: password checks that may wait for a slot, 1 to
	// 4096. Default 32. Beyond it, and after a wait that would not leave
	// time to answer within the write timeout, 503 with Retry-After.
	BackendQueue int
	// backend_per_user N: backend calls in flight (running or waiting)
	// for one user, 1 to 16. Default 1.
	BackendPerUser int
	// backend_per_address N: backend calls in flight (running or waiting)
	// for one client address, 1 to 64, at most backend_concurrency.
	// Default 2. Excess gets 429 with Retry-After 1.
	BackendPerAddress int

	// state_directory PATH: where refresh tokens are kept (only their
	// SHA-256 hashes, in the file refresh-tokens). It must exist, belong to
	// the service user and have mode 0700; on a controller it lives on the
	// DRBD file system so that refresh tokens survive a failover. Without
	// it refresh tokens are off: offline_token=true and access_type=offline
	// logins get no refresh_token, and grant_type=refresh_token is answered
	// 400 unsupported_grant_type.
	StateDirectory string
	// refresh_token_ttl DURATION: how long a refresh token (a docker
	// login) stays valid, 1m to 90 days (2160h). Default 7 days (168h). With
	// auth_backend keystone and no keystone_service_user nothing notices a
	// user disabled in Keystone, so the maximum, and the default, is then
	// 24h.
	RefreshTokenTTL time.Duration
	// refresh_token_max N: live refresh tokens kept, 1 to 1000000.
	// Default 100000. Beyond it a login gets no refresh token (logged as a
	// warning); expired entries are purged first.
	RefreshTokenMax int
	// refresh_token_user_max N: one user's live refresh tokens, 1 to
	// 1000000, default 100; refresh_token_client_max N: one user's from one
	// client_id, 1 to 1000000, default 20. The smallest bound that applies
	// wins.
	// A login beyond either drops that user's oldest token (of that
	// client first), so one user's login loop never crowds out another's.
	RefreshTokenUserMax, RefreshTokenClientMax int
	// keystone_service_user NAME, keystone_service_password_file PATH,
	// keystone_service_project NAME: the Keystone account that re-checks,
	// on refresh grants, that a refresh token's user still exists and is
	// enabled. All three or none; auth_backend keystone only. The password
	// file (its first line) must have mode 0600. The account needs a role
	// on the project that may list users and domains.
	KeystoneServiceUser, KeystoneServicePasswordFile, KeystoneServiceProject string
	// keystone_service_domain NAME: the service user's and project's
	// domain. Default "Default".
	KeystoneServiceDomain string
	// keystone_recheck_interval DURATION: how often, per refresh token, a
	// refresh grant asks Keystone about its user, 1m to 24h. Default 15m.
	// While Keystone is unreachable, refreshes are still granted until the
	// last good check is 2×keystone_recheck_interval old, then answered
	// 503.
	KeystoneRecheckInterval time.Duration

	// metrics_network CIDR (repeatable): clients allowed to GET /metrics.
	// Default loopback only (127.0.0.0/8 and ::1).
	MetricsNetworks []netip.Prefix

	// admin_user NAME (repeatable): users granted everything.
	AdminUsers []string
	// public_namespace NAME (repeatable): every authenticated user may pull
	// NAME/…. Default "public".
	PublicNamespaces []string
	// public_repository NAME (repeatable): exact repositories every
	// authenticated user may pull; their first component is reserved.
	PublicRepositories []string
	// reserved_namespace NAME (repeatable): namespaces only admins own, in
	// addition to builtinReserved and the public namespaces.
	ReservedNamespaces []string
}

func (c *Config) keywords() []shared.Keyword {
	return append(c.Server.Keywords(), []shared.Keyword{
		{Name: "service", Repeat: true, Set: shared.Strings(&c.Services)},
		{Name: "issuer", Set: shared.String(&c.Issuer)},
		{Name: "signing_key", Repeat: true, Set: pathList(&c.SigningKeys)},
		{Name: "token_ttl", Set: shared.Duration(&c.TokenTTL, issuer.MinTokenTTL, time.Hour)},
		{Name: "token_reuse_percent", Set: shared.Int(&c.TokenReusePercent, 0, reuse.MaxPercent)},
		{Name: "auth_backend", Set: shared.OneOf(&c.AuthBackend, "users", "keystone")},
		{Name: "keystone_url", Set: shared.String(&c.KeystoneURL)},
		{Name: "keystone_user_domain", Set: shared.String(&c.KeystoneUserDomain)},
		{Name: "keystone_ca", Set: shared.Path(&c.KeystoneCA)},
		{Name: "keystone_timeout", Set: shared.Duration(&c.KeystoneTimeout, MinKeystoneTimeout, MaxKeystoneTimeout)},
		{Name: "admin_role", Set: shared.String(&c.AdminRole)},
		{Name: "admin_project", Set: shared.String(&c.AdminProject)},
		{Name: "users_file", Set: shared.Path(&c.UsersFile)},
		{Name: "cache_ttl", Set: shared.Duration(&c.CacheTTL, time.Second, 24*time.Hour)},
		{Name: "cache_size", Set: shared.Int(&c.CacheSize, 1, 1<<20)},
		{Name: "backoff_free", Set: shared.Int(&c.BackoffFree, 1, 100)},
		{Name: "backoff_max", Set: shared.Duration(&c.BackoffMax, time.Second, time.Hour)},
		{Name: "keystone_lockout_attempts", Set: shared.Int(&c.KeystoneLockoutAttempts, 0, 100)},
		{Name: "keystone_lockout_window", Set: shared.Duration(&c.KeystoneLockoutWindow, time.Minute, 24*time.Hour)},
		{Name: "backoff_spray_users", Set: shared.Int(&c.BackoffSprayUsers, 2, authn.MaxSprayUsers)},
		{Name: "backend_concurrency", Set: shared.Int(&c.BackendConcurrency, 1, 256)},
		{Name: "backend_queue", Set: shared.Int(&c.BackendQueue, 1, 4096)},
		{Name: "backend_per_user", Set: shared.Int(&c.BackendPerUser, 1, 16)},
		{Name: "backend_per_address", Set: shared.Int(&c.BackendPerAddress, 1, 64)},
		{Name: "state_directory", Set: shared.Path(&c.StateDirectory)},
		{Name: "refresh_token_ttl", Set: shared.Duration(&c.RefreshTokenTTL, refresh.MinRefreshTokenTTL, refresh.MaxRefreshTokenTTL)},
		{Name: "refresh_token_max", Set: shared.Int(&c.RefreshTokenMax, 1, refresh.MaxRefreshTokenMax)},
		{Name: "refresh_token_user_max", Set: shared.Int(&c.RefreshTokenUserMax, 1, refresh.MaxRefreshTokenMax)},
		{Name: "refresh_token_client_max", Set: shared.Int(&c.RefreshTokenClientMax, 1, refresh.MaxRefreshTokenMax)},
		{Name: "keystone_service_user", Set: shared.String(&c.KeystoneServiceUser)},
		{Name: "keystone_service_password_file", Set: shared.Path(&c.KeystoneServicePasswordFile)},
		{Name: "keystone_service_project", Set: shared.String(&c.KeystoneServiceProject)},
		{Name: "keystone_service_domain", Set: shared.String(&c.KeystoneServiceDomain)},
		{Name: "keystone_recheck_interval", Set: shared.Duration(&c.KeystoneRecheckInterval, time.Minute, 24*time.Hour)},
		{Name: "metrics_network", Repeat: true, Set: shared.Prefixes(&c.MetricsNetworks)},
		{Name: "admin_user", Repeat: true, Set: shared.Strings(&c.AdminUsers)},
		{Name: "public_namespace", Repeat: true, Set: shared.Strings(&c.PublicNamespaces)},
		{Name: "public_repository", Repeat: true, Set: shared.Strings(&c.PublicRepositories)},
		{Name: "reserved_namespace", Repeat: true, Set: shared.Strings(&c.ReservedNamespaces)},
	}...)
}

// Keywords lists every keyword the configuration file accepts, in the order
// of the keyword table.
func Keywords() []string {
	var names []string
	for _, kw := range (&Config{}).keywords() {
		names = append(names, kw.Name)
	}
	return names
}

// ReuseWindow is how old a token may be and still be handed out again
// (token_reuse_percent of token_ttl); 0 when reuse is off.
func (c *Config) ReuseWindow() time.Duration {
	return reuse.Window(c.TokenTTL, c.TokenReusePercent)
}

// PolicyConfig is the policy part of the configuration.
func (c *Config) PolicyConfig() access.PolicyConfig {
	return access.PolicyConfig{
		AdminUsers:         c.AdminUsers,
		PublicNamespaces:   c.PublicNamespaces,
		PublicRepositories: c.PublicRepositories,
		ReservedNamespaces: c.ReservedNamespaces,
	}
}

// pathList appends an absolute path, for repeatable path keywords.
func pathList(dst *[]string) func(string) error {
	return func(v string) error {
		var p string
		if err := shared.Path(&p)(v); err != nil {
			return err
		}
		*dst = append(*dst, p)
		return nil
	}
}

// MinKeystoneTimeout, MaxKeystoneTimeout and DefaultKeystoneTimeout bound
// keystone_timeout. The maximum leaves 2 s of serve.APITimeouts.Write
// (10 s) for answering after a Keystone that hangs.
const (
	MinKeystoneTimeout     = time.Second
	MaxKeystoneTimeout     = 8 * time.Second
	DefaultKeystoneTimeout = 5 * time.Second
)

// DefaultMetricsNetworks is loopback only.
var DefaultMetricsNetworks = listen.Loopback

// builtinReserved are namespaces no user may own whatever the
// configuration says: StarlingX mirrors upstream registries under their host
// names (registry.local:9001/docker.io/…), so a user called "docker.io" must
// not be able to push into those mirrors.
var builtinReserved = []string{
	"docker.io", "quay.io", "gcr.io", "k8s.gcr.io", "registry.k8s.io",
	"ghcr.io", "icr.io", "registry.local",
}

// RefreshLimits returns the refresh store's limits.
func (c *Config) RefreshLimits() refresh.Limits {
	return refresh.Limits{Max: c.RefreshTokenMax, UserMax: c.RefreshTokenUserMax, ClientMax: c.RefreshTokenClientMax}
}

// BackoffConfig is the Backoff configuration; the lockout guard applies to
// Keystone only.
func (c *Config) BackoffConfig() authn.BackoffConfig {
	bc := authn.BackoffConfig{
		Free:            c.BackoffFree,
		Max:             c.BackoffMax,
		SprayUsers:      c.BackoffSprayUsers,
		LockoutAttempts: c.KeystoneLockoutAttempts,
		PerUser:         c.BackendPerUser,
		PerAddress:      c.BackendPerAddress,
	}
	if c.AuthBackend != "keystone" {
		bc.LockoutAttempts = 0
	}
	return bc
}

// GateConfig bounds the password checks under way. A check waits for a
// slot at most what is left of the write timeout (writeTimeout) after the
// backend's own bound (keystone_timeout; bcrypt is given 2 s) and a second
// to answer.
func (c *Config) GateConfig(writeTimeout time.Duration) authn.GateConfig {
	backend := 2 * time.Second
	if c.AuthBackend == "keystone" {
		backend = c.KeystoneTimeout
	}
	return authn.GateConfig{
		Concurrency: c.BackendConcurrency,
		Queue:       c.BackendQueue,
		Wait:        max(writeTimeout-backend-time.Second, 100*time.Millisecond),
	}
}

// Load parses and validates the file at path, filling defaults.
func Load(path string) (*Config, error) {
	c := &Config{
		Server:             shared.DefaultServer(),
		TokenTTL:           issuer.DefaultTokenTTL,
		TokenReusePercent:  reuse.DefaultPercent,
		AuthBackend:        "users",
		CacheTTL:           authn.DefaultCacheTTL,
		KeystoneUserDomain: "Default",
		KeystoneTimeout:    DefaultKeystoneTimeout,
		CacheSize:          authn.DefaultCacheSize,

		BackoffFree:             authn.DefaultBackoffFree,
		BackoffMax:              authn.DefaultBackoffMax,
		BackoffSprayUsers:       authn.DefaultSprayUsers,
		KeystoneLockoutAttempts: authn.DefaultLockoutAttempts,
		BackendConcurrency:      authn.DefaultConcurrency,
		BackendQueue:            authn.DefaultQueue,
		BackendPerUser:          authn.DefaultPerUser,
		BackendPerAddress:       authn.DefaultPerAddress,

		RefreshTokenMax:         refresh.DefaultRefreshTokenMax,
		RefreshTokenUserMax:     refresh.DefaultUserMax,
		RefreshTokenClientMax:   refresh.DefaultClientMax,
		KeystoneServiceDomain:   "Default",
		KeystoneRecheckInterval: 15 * time.Minute,
		// RefreshTokenTTL's default depends on the backend: see below.
	}
	if err := shared.ParseFile(path, c.keywords()); err != nil {
		return nil, err
	}
	if len(c.MetricsNetworks) == 0 {
		c.MetricsNetworks = DefaultMetricsNetworks
	}
	if len(c.PublicNamespaces) == 0 {
		c.PublicNamespaces = []string{"public"}
	}
	c.ReservedNamespaces = append(c.ReservedNamespaces, builtinReserved...)
	if c.RefreshTokenTTL == 0 {
		c.RefreshTokenTTL = refresh.DefaultRefreshTokenTTL
		if c.AuthBackend == "keystone" && c.KeystoneServiceUser == "" {
			c.RefreshTokenTTL = refresh.MaxUncheckedRefreshTTL
		}
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// checkKeystoneURL wants an absolute http(s) URL with a host and no
// credentials, query or fragment.
func checkKeystoneURL(raw string) error {
	if raw == "" {
		return errors.New("keystone_url is required with auth_backend keystone")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("keystone_url: %w", err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return errors.New("keystone_url must be an https:// URL such as https://controller:5000/v3")
	case u.User != nil, u.RawQuery != "", u.Fragment != "":
		return errors.New("keystone_url must not carry credentials, a query or a fragment")
	}
	return nil
}

// validate is a flat list of checks, each naming its keyword.
func (c *Config) validate() error {
	errs := c.Server.Validate()
	req := func(v, kw string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", kw))
		}
	}
	req(c.Issuer, "issuer")
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("service is required (the registry's token_service, e.g. registry.local:9001)"))
	}
	if len(c.SigningKeys) == 0 {
		errs = append(errs, errors.New("signing_key is required"))
	}
	switch c.AuthBackend {
	case "users":
		if c.UsersFile == "" {
			errs = append(errs, errors.New("users_file is required with auth_backend users"))
		}
		if c.AdminRole != "" || c.AdminProject != "" {
			errs = append(errs, errors.New("admin_role and admin_project need auth_backend keystone; use admin_user"))
		}
	case "keystone":
		if err := checkKeystoneURL(c.KeystoneURL); err != nil {
			errs = append(errs, err)
		}
		if c.UsersFile != "" {
			errs = append(errs, errors.New("users_file is not used with auth_backend keystone; remove it"))
		}
	}
	svc := []string{c.KeystoneServiceUser, c.KeystoneServicePasswordFile, c.KeystoneServiceProject}
	if (svc[0] == "") != (svc[1] == "") || (svc[0] == "") != (svc[2] == "") {
		errs = append(errs, errors.New("keystone_service_user, keystone_service_password_file and keystone_service_project go together: give all three or none"))
	}
	if c.KeystoneServiceUser != "" && c.AuthBackend != "keystone" {
		errs = append(errs, errors.New("keystone_service_user needs auth_backend keystone; remove the keystone_service_* keywords"))
	}
	if c.AuthBackend == "keystone" && c.KeystoneServiceUser == "" && c.RefreshTokenTTL > refresh.MaxUncheckedRefreshTTL {
		errs = append(errs, fmt.Errorf("refresh_token_ttl %s: with auth_backend keystone and no keystone_service_user the maximum is %s, because nothing would notice a user disabled in Keystone; lower it or configure keystone_service_user",
			c.RefreshTokenTTL, refresh.MaxUncheckedRefreshTTL))
	}
	if c.KeystoneLockoutAttempts == 1 {
		errs = append(errs, errors.New("keystone_lockout_attempts 1 would refuse every login: give 0 (Keystone lockout off) or Keystone's lockout_failure_attempts, at least 2"))
	}
	if c.BackendPerAddress > c.BackendConcurrency {
		errs = append(errs, fmt.Errorf("backend_per_address %d is above backend_concurrency %d: one address could take every slot; lower it", c.BackendPerAddress, c.BackendConcurrency))
	}
	if (c.AdminRole == "") != (c.AdminProject == "") {
		errs = append(errs, errors.New("admin_role and admin_project go together: give both or neither"))
	}
	if _, err := access.NewPolicy(c.PolicyConfig()); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for _, s := range c.Services {
		if seen[s] {
			errs = append(errs, fmt.Errorf("service %q is listed twice", s))
		}
		seen[s] = true
	}
	return errors.Join(errs...)
}
