package main

import (
	"log/slog"
	"net/netip"
	"os"

	"stx-registry/registry/config"
	"stx-registry/shared/jws"
	"stx-registry/shared/probe"
	"stx-registry/shared/tlsconf"
)

// probeMain is "stx-registry probe [-n] [-f CONFIG] [-timeout 5s]": an HTTPS
// GET /healthz to the configured listen address, trusting exactly
// tls_certificate. It exits 0 when healthy, 7 when nothing listens and 1
// otherwise, with one line on standard error saying why.
//
// With -n it checks the configuration file, tls_certificate with tls_key and
// token_certificate, as -t does, but not root_directory, which a standby
// controller does not mount; it contacts nothing. The OCF agent's
// validate-all uses it.
//
// Loading the configuration never looks at root_directory, so a probe on a
// standby controller reports "not running" rather than a configuration
// error.
func probeMain(args []string) int {
	return probe.Command{
		Name:          "stx-registry",
		DefaultConfig: config.DefaultFile,
		Load: func(file string) (netip.AddrPort, string, error) {
			cfg, err := config.Load(file)
			if err != nil {
				return netip.AddrPort{}, "", err
			}
			return cfg.Listen, cfg.TLSCertificate, nil
		},
		Check: func(file string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			if _, err := jws.ReadBundle(cfg.TokenCertificate); err != nil {
				return err
			}
			_, err = tlsconf.New(cfg.TLSCertificate, cfg.TLSKey, slog.New(slog.DiscardHandler))
			return err
		},
	}.Main(args, os.Stderr)
}
