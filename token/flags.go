package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

var (
	// errUsage is a command line mistake: the error and the usage text are
	// on stderr, and main exits 2.
	errUsage = errors.New("usage error")
	// errHelp answers -h: the usage text is on stdout, and main exits 0.
	errHelp = errors.New("help requested")
)

// flags is the flag set of the daemon or of one subcommand, with the
// synopsis its usage text starts with. Every command handles -h and its
// mistakes through it, the same way as stx-registry.
type flags struct {
	*flag.FlagSet
	synopsis       string
	stdout, stderr io.Writer
}

func newFlags(name, synopsis string, stdout, stderr io.Writer) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors are printed by parse, with the usage
	fs.Usage = func() {}
	return &flags{FlagSet: fs, synopsis: synopsis, stdout: stdout, stderr: stderr}
}

// usage writes the synopsis and the flags to w.
func (f *flags) usage(w io.Writer) {
	fmt.Fprint(w, f.synopsis)
	f.SetOutput(w)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}

// parse parses args. It returns errHelp after -h, or the result of fail for
// a bad flag.
func (f *flags) parse(args []string) error {
	err := f.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		f.usage(f.stdout)
		return errHelp
	}
	return f.fail(err)
}

// fail reports a command line mistake: err, unless it is nil, then the
// usage text, on stderr. It returns errUsage.
func (f *flags) fail(err error) error {
	if err != nil {
		fmt.Fprintf(f.stderr, "stx-token-server: %v\n", err)
	}
	f.usage(f.stderr)
	return errUsage
}
