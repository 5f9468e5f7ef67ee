package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"

	"stx-registry/shared/config"
	"stx-registry/shared/listen"
	"stx-registry/shared/tlsconf"
)

// defaultConfigFile is where stx-registry looks for its configuration
// unless -f says otherwise.
const defaultConfigFile = "/etc/stx-registry/stx-registry.conf"

// Config is the parsed configuration file. The comment on each field is the
// reference for its keyword; stx-registry.conf(5) says the same for
// operators. Every keyword may appear at most once unless noted.
type Config struct {
	// ListenAddr is "listen IP:PORT" (IPv6 as "[::1]:9001"), the only
	// address the registry serves HTTPS on. Required. The IP must be a
	// loopback address or inside one of the management_network prefixes;
	// host names, wildcard addresses and port 0 are refused.
	ListenAddr string
	// Listen is ListenAddr after validation.
	Listen netip.AddrPort

	// ManagementNetworks is "management_network CIDR", repeatable, e.g.
	// "management_network 192.168.204.0/24". The prefix must be in masked
	// form. Without any, only loopback listen addresses are accepted.
	ManagementNetworks []netip.Prefix

	// TLSCertificate is "tls_certificate PATH": the PEM server certificate
	// chain, leaf first. Required. Reloaded on SIGHUP and when the file
	// changes.
	TLSCertificate string
	// TLSKey is "tls_key PATH": the PEM private key of tls_certificate.
	// Required. Keep it mode 0600.
	TLSKey string
	// TLSMinVersion is "tls_min_version 1.2|1.3". Default 1.2. With 1.2
	// only ECDHE key exchange and AEAD ciphers are offered.
	TLSMinVersion string
	// MinTLS is TLSMinVersion as a crypto/tls constant.
	MinTLS uint16

	// LogFormat is "log_format text|json". Default text. Logs go to
	// standard error; the registry's own access log and distribution's
	// messages use the same format.
	LogFormat string
	// LogLevel is "log_level debug|info|warn|error". Default info. Secrets
	// (Authorization headers, tokens) are never logged at any level.
	LogLevel string

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

// defaultConfig returns a Config holding every default.
func defaultConfig() *Config {
	return &Config{
		TLSMinVersion: "1.2",
		LogFormat:     "text",
		LogLevel:      "info",
		RootDirectory: "/var/lib/docker-distribution",
		RequireMount:  true,
		ReadOnly:      false,
	}
}

// keywords maps each configuration keyword to the field it sets.
func (c *Config) keywords() []config.Keyword {
	return []config.Keyword{
		{Name: "listen", Set: config.String(&c.ListenAddr)},
		{Name: "management_network", Repeat: true, Set: config.Prefixes(&c.ManagementNetworks)},
		{Name: "tls_certificate", Set: config.Path(&c.TLSCertificate)},
		{Name: "tls_key", Set: config.Path(&c.TLSKey)},
		{Name: "tls_min_version", Set: config.OneOf(&c.TLSMinVersion, "1.2", "1.3")},
		{Name: "log_format", Set: config.OneOf(&c.LogFormat, "text", "json")},
		{Name: "log_level", Set: config.OneOf(&c.LogLevel, "debug", "info", "warn", "error")},
		{Name: "root_directory", Set: config.Path(&c.RootDirectory)},
		{Name: "require_mount", Set: config.Bool(&c.RequireMount)},
		{Name: "read_only", Set: config.Bool(&c.ReadOnly)},
		{Name: "token_realm", Set: config.String(&c.TokenRealm)},
		{Name: "token_service", Set: config.String(&c.TokenService)},
		{Name: "token_issuer", Set: config.String(&c.TokenIssuer)},
		{Name: "token_certificate", Set: config.Path(&c.TokenCertificate)},
	}
}

// loadConfig reads and validates the configuration file at path.
func loadConfig(path string) (*Config, error) {
	c := defaultConfig()
	if err := config.ParseFile(path, c.keywords()); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// parseConfig is loadConfig for an already open file; name is used in
// errors.
func parseConfig(name string, r io.Reader) (*Config, error) {
	c := defaultConfig()
	if err := config.Parse(name, r, c.keywords()); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// validate checks what single keywords cannot: required keywords, the
// listen address against management_network, and the realm URL. Each check
// names the keyword and the rule.
func (c *Config) validate() error {
	required := []struct{ name, value string }{
		{"listen", c.ListenAddr},
		{"tls_certificate", c.TLSCertificate},
		{"tls_key", c.TLSKey},
		{"token_realm", c.TokenRealm},
		{"token_service", c.TokenService},
		{"token_issuer", c.TokenIssuer},
		{"token_certificate", c.TokenCertificate},
	}
	for _, r := range required {
		if r.value == "" {
			return fmt.Errorf("missing required keyword %s", r.name)
		}
	}

	ap, err := listen.Check(c.ListenAddr, c.ManagementNetworks)
	if err != nil {
		return err
	}
	c.Listen = ap

	c.MinTLS, err = tlsconf.ParseMinVersion(c.TLSMinVersion)
	if err != nil {
		return fmt.Errorf("tls_min_version: %w", err)
	}

	if err := checkRealm(c.TokenRealm); err != nil {
		return err
	}
	// service and issuer are written into the WWW-Authenticate challenge
	// as quoted strings; keep them free of characters that need quoting.
	for _, v := range []struct{ name, value string }{
		{"token_service", c.TokenService},
		{"token_issuer", c.TokenIssuer},
	} {
		if strings.ContainsAny(v.value, "\"\\ \t") {
			return fmt.Errorf("%s must not contain quotes, backslashes or blanks, got %q", v.name, v.value)
		}
	}
	return nil
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
