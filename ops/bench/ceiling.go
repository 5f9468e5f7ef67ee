package main

// The ceiling: the fastest token server this machine could have. It serves
// through the same shared/serve server, with the same shared/tlsconf
// configuration, certificate and timeouts as stx-token-server, and answers
// every request with a fixed JSON body the size of a real token reply. It
// runs as its own process, like the token server, so that both share the
// two cores with the load generator in the same way.

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"stx-registry/shared/serve"
	"stx-registry/shared/tlsconf"
)

// maxCeilingBody bounds -size: a token reply is 1-2 KiB.
const maxCeilingBody = 64 << 10

func ceilingMain(args []string) error {
	fs := flag.NewFlagSet("bench ceiling", flag.ContinueOnError)
	cert := fs.String("cert", "", "TLS certificate `file`")
	key := fs.String("key", "", "TLS key `file`")
	addr := fs.String("addr", "", "listen `IP:port`")
	size := fs.Int("size", 0, "reply body `bytes`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size < 32 || *size > maxCeilingBody {
		return errors.New("-size must be 32 to " + strconv.Itoa(maxCeilingBody))
	}
	body := ceilingBody(*size)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 8<<10))
		}
		// The token server's reply headers (writeJSON).
		hd := w.Header()
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Pragma", "no-cache")
		hd.Set("X-Content-Type-Options", "nosniff")
		w.Write(body)
	})
	return serveCeiling(*addr, *cert, *key, h, serve.APITimeouts)
}

// serveCeiling runs a ceiling server: h over the daemons' own shared/serve
// server and shared/tlsconf configuration, on a loopback addr, until
// SIGTERM or SIGINT.
func serveCeiling(addr, cert, key string, h http.Handler, t serve.Timeouts) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return errors.New("-addr must be a loopback IP:port")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tlsr, err := tlsconf.New(cert, key, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serve.Run(ctx, serve.Options{
		Addr: ap, Handler: h, TLS: tlsr, MinTLS: tls.VersionTLS12, Timeouts: t, Logger: log,
	})
}

// ceilingBody is a JSON object of exactly size bytes, newline included, as
// json.Encoder writes a token reply.
func ceilingBody(size int) []byte {
	const open, end = `{"token":"`, "\"}\n"
	return []byte(open + strings.Repeat("x", size-len(open)-len(end)) + end)
}
