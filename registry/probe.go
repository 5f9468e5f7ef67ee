package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"stx-registry/shared/probe"
	"stx-registry/shared/tlsconf"
)

// Exit codes of "stx-registry probe", chosen to be the OCF codes the
// resource agent returns for them.
const (
	probeHealthy    = 0 // OCF_SUCCESS
	probeFailed     = 1 // OCF_ERR_GENERIC
	probeNotRunning = 7 // OCF_NOT_RUNNING
)

// maxProbeTimeout bounds -timeout: SM's monitor runs every 40 s, and a
// probe that waits longer than that is of no use to it.
const maxProbeTimeout = 60 * time.Second

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
	fs := flag.NewFlagSet("stx-registry probe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("f", defaultConfigFile, "configuration `file`")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	configOnly := fs.Bool("n", false, "check the configuration and certificates only, without root_directory")
	if err := fs.Parse(args); err != nil {
		return probeExit(probeFailed, fmt.Errorf("%w (usage: stx-registry probe [-n] [-f file] [-timeout 5s])", err))
	}
	if fs.NArg() > 0 {
		return probeExit(probeFailed, fmt.Errorf("unexpected argument %q: probe takes only flags", fs.Arg(0)))
	}
	if *timeout <= 0 || *timeout > maxProbeTimeout {
		return probeExit(probeFailed, fmt.Errorf("-timeout %v: give a duration above 0 and at most %v", *timeout, maxProbeTimeout))
	}
	cfg, err := loadConfig(*configFile)
	if err != nil {
		return probeExit(probeFailed, err)
	}
	if *configOnly {
		if _, err := tokenAlgorithms(cfg.TokenCertificate); err != nil {
			return probeExit(probeFailed, err)
		}
		if _, err := tlsconf.New(cfg.TLSCertificate, cfg.TLSKey, slog.New(slog.DiscardHandler)); err != nil {
			return probeExit(probeFailed, err)
		}
		return probeHealthy
	}
	err = probe.Probe(context.Background(), cfg.Listen, cfg.TLSCertificate, *timeout)
	switch {
	case err == nil:
		return probeHealthy
	case errors.Is(err, probe.ErrNotRunning):
		return probeExit(probeNotRunning, err)
	default:
		return probeExit(probeFailed, err)
	}
}

// probeExit writes err as one line on standard error and returns code.
func probeExit(code int, err error) int {
	fmt.Fprintf(os.Stderr, "stx-registry probe: %v\n", err)
	return code
}
