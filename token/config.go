package main

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"stx-registry/shared/config"
	"stx-registry/shared/listen"
)

// DefaultConfigFile is where the daemon looks without -f.
const DefaultConfigFile = "/etc/stx-token-server/stx-token-server.conf"

// Config is stx-token-server.conf(5). Each field names its keyword.
type Config struct {
	// listen IP:PORT: the one address to serve HTTPS on. Required. Must be
	// loopback or inside a management_network.
	Listen string
	// management_network CIDR (repeatable): networks listen may be in.
	ManagementNetworks []netip.Prefix
	// tls_certificate, tls_key PATH: the server certificate (chain, leaf
	// first) and its key. Required; re-read on change and on SIGHUP.
	TLSCertificate, TLSKey string
	// tls_min_version 1.2|1.3: the lowest TLS version offered. Default 1.2.
	TLSMinVersion string
	// log_format text|json, log_level debug|info|warn|error.
	LogFormat, LogLevel string

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

	// auth_backend users: where passwords are checked. Default users.
	AuthBackend string
	// users_file PATH: bcrypt users file (auth_backend users). Required
	// for that backend, mode 0600.
	UsersFile string
	// cache_ttl DURATION, cache_size N: the credential cache.
	CacheTTL  time.Duration
	CacheSize int

	// admin_user NAME (repeatable): users granted everything.
	AdminUsers []string
	// public_namespace NAME (repeatable): every authenticated user may pull
	// NAME/…. Default "public".
	PublicNamespaces []string
	// public_repository NAME (repeatable): exact repositories every
	// authenticated user may pull.
	PublicRepositories []string
	// reserved_namespace NAME (repeatable): namespaces only admins own, in
	// addition to builtinReserved and the public namespaces.
	ReservedNamespaces []string

	listenAddr netip.AddrPort
}

func (c *Config) keywords() []config.Keyword {
	return []config.Keyword{
		{Name: "listen", Set: config.String(&c.Listen)},
		{Name: "management_network", Repeat: true, Set: config.Prefixes(&c.ManagementNetworks)},
		{Name: "tls_certificate", Set: config.Path(&c.TLSCertificate)},
		{Name: "tls_key", Set: config.Path(&c.TLSKey)},
		{Name: "tls_min_version", Set: config.OneOf(&c.TLSMinVersion, "1.2", "1.3")},
		{Name: "log_format", Set: config.OneOf(&c.LogFormat, "text", "json")},
		{Name: "log_level", Set: config.OneOf(&c.LogLevel, "debug", "info", "warn", "error")},
		{Name: "service", Repeat: true, Set: config.Strings(&c.Services)},
		{Name: "issuer", Set: config.String(&c.Issuer)},
		{Name: "signing_key", Repeat: true, Set: pathList(&c.SigningKeys)},
		{Name: "token_ttl", Set: config.Duration(&c.TokenTTL, MinTokenTTL, time.Hour)},
		{Name: "auth_backend", Set: config.OneOf(&c.AuthBackend, "users")},
		{Name: "users_file", Set: config.Path(&c.UsersFile)},
		{Name: "cache_ttl", Set: config.Duration(&c.CacheTTL, time.Second, 24*time.Hour)},
		{Name: "cache_size", Set: config.Int(&c.CacheSize, 1, 1<<20)},
		{Name: "admin_user", Repeat: true, Set: config.Strings(&c.AdminUsers)},
		{Name: "public_namespace", Repeat: true, Set: config.Strings(&c.PublicNamespaces)},
		{Name: "public_repository", Repeat: true, Set: config.Strings(&c.PublicRepositories)},
		{Name: "reserved_namespace", Repeat: true, Set: config.Strings(&c.ReservedNamespaces)},
	}
}

// pathList appends an absolute path, for repeatable path keywords.
func pathList(dst *[]string) func(string) error {
	return func(v string) error {
		var p string
		if err := config.Path(&p)(v); err != nil {
			return err
		}
		*dst = append(*dst, p)
		return nil
	}
}

// builtinReserved are namespaces no user may own whatever the
// configuration says: StarlingX mirrors upstream registries under their host
// names (registry.local:9001/docker.io/…), so a user called "docker.io" must
// not be able to push into those mirrors.
var builtinReserved = []string{
	"docker.io", "quay.io", "gcr.io", "k8s.gcr.io", "registry.k8s.io",
	"ghcr.io", "icr.io", "registry.local",
}

// LoadConfig parses and validates the file at path, filling defaults.
func LoadConfig(path string) (*Config, error) {
	c := &Config{
		TLSMinVersion: "1.2",
		LogFormat:     "text",
		LogLevel:      "info",
		TokenTTL:      DefaultTokenTTL,
		AuthBackend:   "users",
		CacheTTL:      DefaultCacheTTL,
		CacheSize:     DefaultCacheSize,
	}
	if err := config.ParseFile(path, c.keywords()); err != nil {
		return nil, err
	}
	if len(c.PublicNamespaces) == 0 {
		c.PublicNamespaces = []string{"public"}
	}
	c.ReservedNamespaces = append(c.ReservedNamespaces, builtinReserved...)
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// validate is a flat list of checks, each naming its keyword.
func (c *Config) validate() error {
	var errs []error
	req := func(v, kw string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", kw))
		}
	}
	req(c.Listen, "listen")
	req(c.TLSCertificate, "tls_certificate")
	req(c.TLSKey, "tls_key")
	req(c.Issuer, "issuer")
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("service is required (the registry's token_service, e.g. registry.local:9001)"))
	}
	if len(c.SigningKeys) == 0 {
		errs = append(errs, errors.New("signing_key is required"))
	}
	if c.AuthBackend == "users" && c.UsersFile == "" {
		errs = append(errs, errors.New("users_file is required with auth_backend users"))
	}
	if c.Listen != "" {
		ap, err := listen.Check(c.Listen, c.ManagementNetworks)
		if err != nil {
			errs = append(errs, err)
		}
		c.listenAddr = ap
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
