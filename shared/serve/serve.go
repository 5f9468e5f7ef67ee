// Package serve runs a daemon's HTTPS server the one way both daemons do it:
// on one explicit address, TLS only (HTTP/1.1 and HTTP/2, never plaintext),
// with every http.Server timeout set, a bounded header size and errors
// logged through slog. SIGHUP reloads the TLS certificate. Cancelling the
// context shuts the server down gracefully: in-flight requests get
// Timeouts.Drain to finish before the remaining connections are closed.
// Progress lets long uploads and downloads that the handler allowed
// (AllowProgress) run for as long as bytes keep moving.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"stx-registry/shared/listen"
	"stx-registry/shared/tlsconf"
)

// MaxHeaderBytes bounds a request's header block. Registry clients send a
// few hundred bytes; a bearer token is 1-2 KiB.
const MaxHeaderBytes = 16 << 10

// Timeouts are the server's time limits. See APITimeouts and
// RegistryTimeouts for what each one guards against.
type Timeouts struct {
	ReadHeader time.Duration // request line and headers
	Read       time.Duration // whole request, or the first idle period of an allowed request under Progress
	Write      time.Duration // from end of headers to end of response, or the first idle period of an allowed request under Progress
	Idle       time.Duration // keep-alive wait for the next request
	Drain      time.Duration // graceful shutdown before connections are closed
}

// APITimeouts suit the token server: small requests answered quickly.
var APITimeouts = Timeouts{
	ReadHeader: 5 * time.Second,  // a client that cannot send headers in 5s is stalled or hostile
	Read:       10 * time.Second, // bodies are small forms
	Write:      10 * time.Second, // covers a slow Keystone check (docker gives up at 15s)
	Idle:       60 * time.Second, // enough for a client to reuse the connection for its next pull
	Drain:      10 * time.Second, // in-flight token requests finish well within this
}

// RegistryTimeouts suit the registry. Blob transfers run for minutes, so
// Read and Write are not totals: wrap the handler with Progress(h,
// RegistryTimeouts.Read) and, for a request the handler allowed
// (AllowProgress, once it is authorized), they become idle limits that
// each transferred chunk renews. For any other request they are totals.
var RegistryTimeouts = Timeouts{
	ReadHeader: 10 * time.Second,  // headers are small even on a slow link
	Read:       60 * time.Second,  // a stalled upload is cut after a minute without bytes
	Write:      60 * time.Second,  // a stalled download likewise
	Idle:       120 * time.Second, // clients pause between layers
	Drain:      30 * time.Second,  // lets most in-flight layers finish on failover
}

// Options configure Run. Addr, Handler and TLS are required; a zero MinTLS
// means TLS 1.2; every Timeouts field must be positive.
type Options struct {
	Addr     netip.AddrPort
	Handler  http.Handler
	TLS      *tlsconf.Reloader
	MinTLS   uint16
	Timeouts Timeouts
	Logger   *slog.Logger
	OnHangup func() // optional, called on SIGHUP after the TLS reload
}

// Run serves HTTPS on o.Addr until ctx is cancelled, then shuts down
// gracefully. It returns an error if it cannot listen or serve, and nil after
// a clean shutdown.
func Run(ctx context.Context, o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}

	// Catch SIGHUP before listening, so it never kills a running server.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ln, err := listen.Listen(ctx, o.Addr)
	if err != nil {
		return err
	}
	ln = limitConns(ln, MaxConns, MaxConnsPerAddr, logger)
	tlsConfig := o.TLS.ServerConfig(o.MinTLS)
	tlsConfig.NextProtos = []string{"h2", "http/1.1"}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true) // over TLS only; UnencryptedHTTP2 stays off
	srv := &http.Server{
		Handler:   o.Handler,
		TLSConfig: tlsConfig,
		Protocols: &protocols,
		// Slowloris: a client must finish its headers promptly.
		ReadHeaderTimeout: o.Timeouts.ReadHeader,
		// Bounds a request body; Progress turns this into an idle limit
		// for an allowed request.
		ReadTimeout: o.Timeouts.Read,
		// Bounds handler plus response; Progress turns this into an idle
		// limit for an allowed request.
		WriteTimeout: o.Timeouts.Write,
		// Closes keep-alive connections nobody uses.
		IdleTimeout: o.Timeouts.Idle,
		// Refuses oversized headers with 431.
		MaxHeaderBytes: MaxHeaderBytes,
		// TLS handshake failures and the like, at warn: they are the
		// client's problem more often than ours.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	stopHangup := make(chan struct{})
	defer close(stopHangup)
	wg.Go(func() {
		for {
			select {
			case <-stopHangup:
				return
			case <-hup:
				logger.Info("SIGHUP received, reloading")
				_ = o.TLS.Reload() // logged by the reloader; the old pair stays in use
				if o.OnHangup != nil {
					o.OnHangup()
				}
			}
		}
	})

	served := make(chan error, 1)
	go func() {
		// With TLSConfig set and GetCertificate in it, ServeTLS needs no file
		// names; it sets up HTTP/2 and wraps ln in tls.NewListener.
		served <- srv.ServeTLS(ln, "", "")
	}()
	logger.Info("listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", o.Addr, err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "addr", o.Addr.String(), "drain", o.Timeouts.Drain)
	drainCtx, cancel := context.WithTimeout(context.Background(), o.Timeouts.Drain)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		logger.Warn("drain time over, closing remaining connections", "addr", o.Addr.String(), "err", err)
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", o.Addr, err)
	}
	logger.Info("stopped", "addr", o.Addr.String())
	return nil
}

func (o *Options) check() error {
	switch {
	case !o.Addr.IsValid():
		return errors.New("serve: no listen address")
	case o.Handler == nil:
		return errors.New("serve: no handler")
	case o.TLS == nil:
		return errors.New("serve: no TLS certificate; plaintext is never served")
	}
	t := o.Timeouts
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ReadHeader", t.ReadHeader}, {"Read", t.Read}, {"Write", t.Write}, {"Idle", t.Idle}, {"Drain", t.Drain}} {
		if d.v <= 0 {
			return fmt.Errorf("serve: timeout %s is %v, it must be positive", d.name, d.v)
		}
	}
	return nil
}
