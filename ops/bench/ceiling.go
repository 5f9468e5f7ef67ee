package main

// The ceiling: the fastest token server this machine could have. It serves
// through the same shared/serve server, with the same shared/tlsconf
// configuration, certificate and timeouts as stx-token-server, and answers
// every request with a fixed JSON body the size of a real token reply. It
// runs as its own process, like the token server, so that both share the
// two cores with the load generator in the same way.
//
// With -audit it also writes, before each reply, the line the token server
// writes for a grant: the same attributes through the daemons' own
// shared/logging text logger to standard error. The difference between the
// two ceilings is what that line costs, a part of every token's price that
// no optimisation of ours may remove.

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
	"time"

	"stx-registry/shared/listen"
	"stx-registry/shared/logging"
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
	audit := fs.Bool("audit", false, "write the token server's audit line for every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size < 32 || *size > maxCeilingBody {
		return errors.New("-size must be 32 to " + strconv.Itoa(maxCeilingBody))
	}
	body := ceilingBody(*size)
	log, err := logging.New(os.Stderr, "text", "info")
	if err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 8<<10))
		}
		if *audit {
			auditLine(log, r)
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

// auditLine logs what token/server's Audit.Token logs for a reused grant of
// benchScope: the same message, level and attributes, in the same order,
// with the values of this request where the token server has them too.
func auditLine(log *slog.Logger, r *http.Request) {
	user, _, _ := r.BasicAuth()
	attrs := make([]slog.Attr, 0, 15)
	attrs = append(attrs,
		slog.String("result", "granted"),
		slog.Int("status", http.StatusOK),
		slog.String("client", listen.Peer(r).String()),
		slog.String("method", r.Method),
		slog.String("grant_type", "password"),
		slog.String("user", user),
		slog.String("subject", user),
		slog.String("service", r.Host), // an address, as the registry's is
		slog.String("client_id", ""),
		slog.String("requested", benchScope),
		slog.String("granted", benchScope),
		slog.String("jti", strings.Repeat("A", 22)), // 16 random bytes in base64url, as the issuer makes them
		slog.Bool("reused", true),
	)
	// Through the handler, without the caller's program counter, as the
	// token server writes it.
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "token", 0)
	rec.AddAttrs(attrs...)
	log.Handler().Handle(r.Context(), rec)
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
