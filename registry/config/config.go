// Package config owns stx-registry's configuration file: the Config
// struct, whose field comments are the keyword reference, its defaults,
// parsing through shared/config and the checks across keywords. Every
// error found is reported, not only the first.
package config

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"stx-registry/registry/gc"
	"stx-registry/registry/reserve"
	"stx-registry/shared/config"
	"stx-registry/shared/listen"
)

// Bounds of gc_grace.
const (
	minGCGrace = time.Second
	maxGCGrace = 30 * 24 * time.Hour
)

// DefaultMetricsNetworks is loopback only, as for the token server.
var DefaultMetricsNetworks = listen.Loopback

// DefaultFile is where stx-registry looks for its configuration unless -f
// says otherwise.
const DefaultFile = "/etc/stx-registry/stx-registry.conf"

// Config is the parsed configuration file. The comment on each field is the
// reference for its keyword; stx-registry.conf(5) says the same for
// operators. Every keyword may appear at most once unless noted.
type Config struct {
	// Server holds the keywords both daemons share: listen,
	// management_network, tls_certificate, tls_key, tls_min_version,
	// log_format and log_level (see shared/config.Server). The registry's
	// access log and distribution's messages use log_format too.
	config.Server

	// RootDirectory is "root_directory PATH": where images are stored.
	// Default /var/lib/docker-distribution. It must exist, be a real
	// directory (not a symbolic link), be owned by the user stx-registry
	// runs as and have mode 0700.
	RootDirectory string
	// RequireMount is "require_mount yes|no". Default yes: root_directory
	// must be a mount point (the DRBD filesystem), so that a registry
	// started before the mount never writes images to the root filesystem.
	RequireMount bool
	// ReadOnly is "read_only yes|no". Default no. With yes, pushes and
	// deletes are refused; use it while garbage collection runs.
	ReadOnly bool
	// StorageReserve is "storage_reserve N%|SIZE": free space on the
	// root_directory filesystem kept for admins. Below it, new uploads
	// from other users are refused before any byte is written. SIZE is
	// bytes with an optional K, M, G or T (binary) suffix; 0 turns the
	// reserve off. Default: 5% of the filesystem, at least 1G, at most
	// half of the filesystem.
	StorageReserve reserve.Size
	// GCGrace is "gc_grace DURATION": the age below which garbage
	// collection removes nothing (a blob uploaded for a manifest not yet
	// pushed). Default 1h; 1s to 30 days.
	GCGrace time.Duration
	// MetricsNetworks is "metrics_network CIDR" (repeatable): the clients
	// allowed to GET /metrics. Default loopback only (127.0.0.0/8, ::1/128).
	MetricsNetworks []netip.Prefix

	// TokenRealm is "token_realm URL": where clients get tokens, sent in
	// the WWW-Authenticate challenge, e.g.
	// https://registry.local:9002/token/. Required; must be an https URL
	// with a host.
	TokenRealm string
	// TokenService is "token_service NAME": the audience tokens must be
	// issued for, and the service named in the challenge, e.g.
	// registry.local:9001. Required.
	TokenService string
	// TokenIssuer is "token_issuer NAME": the iss claim tokens must carry,
	// e.g. bird-token-server. Required.
	TokenIssuer string
	// TokenCertificate is "token_certificate PATH": the PEM bundle of the
	// token server's signing certificate(s). Required. Only the algorithms
	// of these keys are accepted (ES256/ES384/ES512 by curve, RS256 for
	// RSA, EdDSA for Ed25519). Re-read, without a restart, when the file
	// changes (checked at most once a second) and on SIGHUP; a bad or
	// empty bundle is logged and the current keys kept. Replace it with a
	// temporary file and rename(2). To rotate the signing key, list both
	// the old and the new certificate until the old tokens have expired.
	TokenCertificate string
}

// Default returns a Config holding every default.
func Default() *Config {
	return &Config{
		Server:        config.DefaultServer(),
		RootDirectory: "/var/lib/docker-distribution",
		RequireMount:  true,
		ReadOnly:      false,
		GCGrace:       gc.DefaultGrace,
	}
}

// keywords maps each configuration keyword to the field it sets.
func (c *Config) keywords() []config.Keyword {
	return append(c.Server.Keywords(), []config.Keyword{
		{Name: "root_directory", Set: config.Path(&c.RootDirectory)},
		{Name: "require_mount", Set: config.Bool(&c.RequireMount)},
		{Name: "read_only", Set: config.Bool(&c.ReadOnly)},
		{Name: "storage_reserve", Set: func(v string) (err error) { c.StorageReserve, err = reserve.Parse(v); return err }},
		{Name: "gc_grace", Set: config.Duration(&c.GCGrace, minGCGrace, maxGCGrace)},
		{Name: "metrics_network", Repeat: true, Set: config.Prefixes(&c.MetricsNetworks)},
		{Name: "token_realm", Set: config.String(&c.TokenRealm)},
		{Name: "token_service", Set: config.String(&c.TokenService)},
		{Name: "token_issuer", Set: config.String(&c.TokenIssuer)},
		{Name: "token_certificate", Set: config.Path(&c.TokenCertificate)},
	}...)
}

// Keywords returns every keyword the configuration file accepts, in the
// order of the reference.
func Keywords() []string {
	var names []string
	for _, k := range Default().keywords() {
		names = append(names, k.Name)
	}
	return names
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	c := Default()
	if err := config.ParseFile(path, c.keywords()); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, inFile(path, err)
	}
	c.defaults()
	return c, nil
}

// Parse is Load for an already open file; name is used in errors.
func Parse(name string, r io.Reader) (*Config, error) {
	c := Default()
	if err := config.Parse(name, r, c.keywords()); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, inFile(name, err)
	}
	c.defaults()
	return c, nil
}

// defaults fills the defaults of repeatable keywords left out.
func (c *Config) defaults() {
	if len(c.MetricsNetworks) == 0 {
		c.MetricsNetworks = DefaultMetricsNetworks
	}
}

// inFile prefixes each of the errors in err with the file name, one per
// line.
func inFile(name string, err error) error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return fmt.Errorf("%s: %w", name, err)
	}
	var errs []error
	for _, e := range joined.Unwrap() {
		errs = append(errs, fmt.Errorf("%s: %w", name, e))
	}
	return errors.Join(errs...)
}

// validate checks what single keywords cannot: required keywords, the
// listen address against management_network, and the realm URL. Each check
// names the keyword and the rule; every failed check is reported.
func (c *Config) validate() error {
	errs := c.Server.Validate()
	required := []struct{ name, value string }{
		{"token_realm", c.TokenRealm},
		{"token_service", c.TokenService},
		{"token_issuer", c.TokenIssuer},
		{"token_certificate", c.TokenCertificate},
	}
	for _, r := range required {
		if r.value == "" {
			errs = append(errs, fmt.Errorf("missing required keyword %s", r.name))
		}
	}
	if c.TokenRealm != "" {
		if err := checkRealm(c.TokenRealm); err != nil {
			errs = append(errs, err)
		}
	}
	// service and issuer are written into the WWW-Authenticate challenge
	// as quoted strings; keep them free of characters that need quoting.
	for _, v := range []struct{ name, value string }{
		{"token_service", c.TokenService},
		{"token_issuer", c.TokenIssuer},
	} {
		if strings.ContainsAny(v.value, "\"\\ \t") {
			errs = append(errs, fmt.Errorf("%s must not contain quotes, backslashes or blanks, got %q", v.name, v.value))
		}
	}
	return errors.Join(errs...)
}

// errRealm is wrapped by every token_realm error.
var errRealm = errors.New("token_realm must be an https URL with a host")

// checkRealm accepts only an absolute https URL with a host and nothing
// that would need quoting in the challenge header.
func checkRealm(realm string) error {
	u, err := url.Parse(realm)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%w, got %q", errRealm, realm)
	}
	if u.User != nil {
		return fmt.Errorf("%w and no user name or password, got a URL with user information", errRealm)
	}
	if u.Fragment != "" || strings.ContainsAny(realm, "\"\\ \t") {
		return fmt.Errorf("%w, no fragment, quotes or blanks, got %q", errRealm, realm)
	}
	return nil
}
