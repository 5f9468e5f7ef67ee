package config

import (
	"fmt"
	"net/netip"

	"stx-registry/shared/listen"
	"stx-registry/shared/tlsconf"
)

// Server is the part of a daemon's configuration that every daemon shares:
// where it listens, its TLS certificate and its logs. A daemon embeds it in
// its own Config, adds Server.Keywords to its keyword table and calls
// Validate. stx-registry.conf(5) and stx-token-server.conf(5) document the
// same keywords.
type Server struct {
	// ListenAddr is "listen IP:PORT" (IPv6 as "[::1]:9001"), the only
	// address the daemon serves HTTPS on. Required. The IP must be a
	// loopback address or inside one of the management_network prefixes;
	// host names, wildcard addresses and port 0 are refused.
	ListenAddr string
	// Listen is ListenAddr once Validate has checked it.
	Listen netip.AddrPort

	// ManagementNetworks is "management_network CIDR", repeatable, e.g.
	// "management_network 192.168.204.0/24", in masked form. Without any,
	// only loopback listen addresses are accepted.
	ManagementNetworks []netip.Prefix

	// TLSCertificate is "tls_certificate PATH": the PEM server certificate
	// chain, leaf first. Required. Re-read on SIGHUP and when the file
	// changes.
	TLSCertificate string
	// TLSKey is "tls_key PATH": the PEM private key of tls_certificate.
	// Required. Keep it mode 0600.
	TLSKey string
	// TLSMinVersion is "tls_min_version 1.2|1.3". Default 1.2. With 1.2
	// only ECDHE key exchange and AEAD ciphers are offered.
	TLSMinVersion string
	// MinTLS is TLSMinVersion as a crypto/tls constant, set by Validate.
	MinTLS uint16

	// LogFormat is "log_format text|json". Default text. Logs go to
	// standard error.
	LogFormat string
	// LogLevel is "log_level debug|info|warn|error". Default info. Secrets
	// are never logged at any level.
	LogLevel string
}

// DefaultServer returns the defaults of the shared keywords.
func DefaultServer() Server {
	return Server{TLSMinVersion: "1.2", LogFormat: "text", LogLevel: "info"}
}

// Keywords returns the shared keywords, setting fields of s.
func (s *Server) Keywords() []Keyword {
	return []Keyword{
		{Name: "listen", Set: String(&s.ListenAddr)},
		{Name: "management_network", Repeat: true, Set: Prefixes(&s.ManagementNetworks)},
		{Name: "tls_certificate", Set: Path(&s.TLSCertificate)},
		{Name: "tls_key", Set: Path(&s.TLSKey)},
		{Name: "tls_min_version", Set: OneOf(&s.TLSMinVersion, "1.2", "1.3")},
		{Name: "log_format", Set: OneOf(&s.LogFormat, "text", "json")},
		{Name: "log_level", Set: OneOf(&s.LogLevel, "debug", "info", "warn", "error")},
	}
}

// Validate checks the required shared keywords and the listen address
// against management_network, and fills Listen and MinTLS. Each error names
// its keyword.
func (s *Server) Validate() []error {
	var errs []error
	for _, r := range []struct{ name, value string }{
		{"listen", s.ListenAddr},
		{"tls_certificate", s.TLSCertificate},
		{"tls_key", s.TLSKey},
	} {
		if r.value == "" {
			errs = append(errs, fmt.Errorf("missing required keyword %s", r.name))
		}
	}
	if s.ListenAddr != "" {
		ap, err := listen.Check(s.ListenAddr, s.ManagementNetworks)
		if err != nil {
			errs = append(errs, err)
		}
		s.Listen = ap
	}
	v, err := tlsconf.ParseMinVersion(s.TLSMinVersion)
	if err != nil {
		errs = append(errs, fmt.Errorf("tls_min_version: %w", err))
	}
	s.MinTLS = v
	return errs
}
