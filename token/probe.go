package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"stx-registry/shared/probe"
)

// Exit codes of "stx-token-server probe", chosen to be the OCF codes the
// resource agent returns for them.
const (
	probeHealthy    = 0 // OCF_SUCCESS
	probeFailed     = 1 // OCF_ERR_GENERIC
	probeNotRunning = 7 // OCF_NOT_RUNNING
)

// maxProbeTimeout bounds -timeout: SM's monitor runs every 40 s, and a
// probe that waits longer than that is of no use to it.
const maxProbeTimeout = 60 * time.Second

// probeMain is "stx-token-server probe [-f CONFIG] [-timeout 5s]": an HTTPS
// GET /healthz to the configured listen address, trusting exactly
// tls_certificate. It exits 0 when healthy, 7 when nothing listens and 1
// otherwise, with one line on standard error saying why. It reads only the
// configuration file and tls_certificate.
func probeMain(args []string) int {
	fs := flag.NewFlagSet("stx-token-server probe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("f", DefaultConfigFile, "configuration `file`")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	if err := fs.Parse(args); err != nil {
		return probeExit(probeFailed, fmt.Errorf("%w (usage: stx-token-server probe [-f file] [-timeout 5s])", err))
	}
	if fs.NArg() > 0 {
		return probeExit(probeFailed, fmt.Errorf("unexpected argument %q: probe takes only flags", fs.Arg(0)))
	}
	if *timeout <= 0 || *timeout > maxProbeTimeout {
		return probeExit(probeFailed, fmt.Errorf("-timeout %v: give a duration above 0 and at most %v", *timeout, maxProbeTimeout))
	}
	cfg, err := LoadConfig(*file)
	if err != nil {
		return probeExit(probeFailed, err)
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
	fmt.Fprintf(os.Stderr, "stx-token-server probe: %v\n", err)
	return code
}
