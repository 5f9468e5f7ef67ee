package main

import (
	"net/netip"
	"os"

	"stx-registry/shared/probe"
)

// probeMain is "stx-token-server probe [-f CONFIG] [-timeout 5s]", the
// health check the OCF agent's monitor runs (see shared/probe). It reads
// only the configuration file and tls_certificate.
func probeMain(args []string) int {
	return probe.Command{
		Name:          "stx-token-server",
		DefaultConfig: DefaultConfigFile,
		Load: func(file string) (netip.AddrPort, string, error) {
			cfg, err := LoadConfig(file)
			if err != nil {
				return netip.AddrPort{}, "", err
			}
			return cfg.Listen, cfg.TLSCertificate, nil
		},
	}.Main(args, os.Stderr)
}
