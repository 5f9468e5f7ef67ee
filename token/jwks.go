package main

import (
	"fmt"
	"io"

	"stx-registry/token/config"
	"stx-registry/token/issuer"
)

// jwksMain implements "stx-token-server jwks [-f CONFIG]": it prints the
// public halves of every signing_key as a JWKS, the signing key first.
func jwksMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stx-token-server jwks", "usage: stx-token-server jwks [-f CONFIG]\n", stdout, stderr)
	file := fs.String("f", config.DefaultFile, "configuration `file`")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fs.fail(nil)
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
