package main

import (
	"log/slog"
	"net/netip"
	"os"

	"stx-registry/shared/probe"
	"stx-registry/shared/tlsconf"
	"stx-registry/token/config"
	"stx-registry/token/issuer"
)

// probeMain is "stx-token-server probe [-n] [-f CONFIG] [-timeout 5s]", the
// health check the OCF agent's monitor runs (see shared/probe). It reads
// only the configuration file and tls_certificate.
//
// With -n it checks the configuration file, the TLS pair and the signing
// keys, as -t does, but not state_directory, which may live on the DRBD
// filesystem a standby controller does not mount; the OCF agent's
// validate-all uses it.
func probeMain(args []string) int {
	return probe.Command{
		Name:          "stx-token-server",
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
			if _, err := issuer.Load(cfg.Issuer, cfg.TokenTTL, cfg.SigningKeys); err != nil {
				return err
			}
			_, err = tlsconf.New(cfg.TLSCertificate, cfg.TLSKey, slog.New(slog.DiscardHandler))
			return err
		},
	}.Main(args, os.Stderr)
}
