package probe

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// Exit codes of a daemon's "probe" subcommand, chosen to be the OCF codes
// the resource agents return for them.
const (
	ExitHealthy    = 0 // OCF_SUCCESS
	ExitFailed     = 1 // OCF_ERR_GENERIC
	ExitUsage      = 2 // OCF_ERR_ARGS: a usage error, as for every subcommand
	ExitNotRunning = 7 // OCF_NOT_RUNNING
)

// maxTimeout bounds -timeout: SM's monitor runs every 40 s, and a probe
// that waits longer than that is of no use to it.
const maxTimeout = 60 * time.Second

// Command describes one daemon's probe subcommand.
type Command struct {
	Name          string // "stx-registry"
	DefaultConfig string // the daemon's default -f
	// Load reads the configuration file and returns the listen address
	// and the tls_certificate file to pin.
	Load func(configFile string) (netip.AddrPort, string, error)
	// Check, if set, adds -n: check the configuration and certificates
	// without contacting the daemon.
	Check func(configFile string) error
}

// Main runs "NAME probe [-n] [-f CONFIG] [-timeout 5s]" with args: an HTTPS
// GET /healthz to the configured listen address, trusting exactly
// tls_certificate. It returns ExitHealthy, ExitNotRunning when nothing
// listens, or ExitFailed, writing one line to stderr saying why.
func (c Command) Main(args []string, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "%s probe: %v\n", c.Name, err)
		return code
	}
	fs := flag.NewFlagSet(c.Name+" probe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("f", c.DefaultConfig, "configuration `file`")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	var checkOnly *bool
	usage := c.Name + " probe [-f file] [-timeout 5s]"
	if c.Check != nil {
		checkOnly = fs.Bool("n", false, "check the configuration and certificates only")
		usage = c.Name + " probe [-n] [-f file] [-timeout 5s]"
	}
	if err := fs.Parse(args); err != nil {
		return fail(ExitUsage, fmt.Errorf("%w (usage: %s)", err, usage))
	}
	if fs.NArg() > 0 {
		return fail(ExitUsage, fmt.Errorf("unexpected argument %q: probe takes only flags (usage: %s)", fs.Arg(0), usage))
	}
	if *timeout <= 0 || *timeout > maxTimeout {
		return fail(ExitUsage, fmt.Errorf("-timeout %v: give a duration above 0 and at most %v", *timeout, maxTimeout))
	}
	if checkOnly != nil && *checkOnly {
		if err := c.Check(*file); err != nil {
			return fail(ExitFailed, err)
		}
		return ExitHealthy
	}
	addr, certFile, err := c.Load(*file)
	if err != nil {
		return fail(ExitFailed, err)
	}
	err = Probe(context.Background(), addr, certFile, *timeout)
	switch {
	case err == nil:
		return ExitHealthy
	case errors.Is(err, ErrNotRunning):
		return fail(ExitNotRunning, err)
	default:
		return fail(ExitFailed, err)
	}
}
