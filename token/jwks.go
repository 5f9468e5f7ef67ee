package main

import (
	"flag"
	"fmt"
	"io"

	"stx-registry/token/config"
	"stx-registry/token/issuer"
)

// jwksMain implements "stx-token-server jwks [-f CONFIG]": it prints the
// public halves of every signing_key as a JWKS, the signing key first.
func jwksMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stx-token-server jwks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", config.DefaultFile, "configuration `file`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: stx-token-server jwks [-f CONFIG]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	iss, err := issuer.Load(cfg.Issuer, cfg.TokenTTL, cfg.SigningKeys)
	if err != nil {
		return err
	}
	out, err := issuer.JWKS(iss.PublicKeys())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}
