package app

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"

	"stx-registry/registry/config"
	"stx-registry/registry/tokenauth"
	"stx-registry/registry/tokenauth/tokentest"
)

// benchBlobBytes is the blob BenchmarkBlob pushes and pulls.
const benchBlobBytes = 64 << 20

// BenchmarkBlob pushes (POST, then one monolithic PUT) and pulls one blob
// over TLS on loopback, client and server in this process, as make bench
// does against the daemon: through the whole handler chain ("chain") and
// through distribution's handler alone ("distribution"), so that the
// difference is what our layers cost. Profile a direction with
//
//	go test -run '^$' -bench 'Blob/chain/pull' -cpuprofile cpu.out ./registry/app
//	go tool pprof -top -cum app.test cpu.out
func BenchmarkBlob(b *testing.B) {
	data := make([]byte, benchBlobBytes)
	rand.Read(data)
	for _, h := range []struct {
		name  string
		build handlerFunc
	}{{"chain", NewHandler}, {"distribution", distributionHandler}} {
		b.Run(h.name, func(b *testing.B) {
			r := serveTestRegistry(b, tokentest.NewKey(b, "P-256"), false, (*httptest.Server).StartTLS, h.build)
			tok := r.token("alice", tokentest.Repo("alice/blob", "pull", "push"))
			b.Run("push", func(b *testing.B) {
				b.SetBytes(benchBlobBytes)
				defer reportCPU(b)()
				for b.Loop() {
					r.pushBlob("alice/blob", tok, data)
				}
			})
			dgst := r.pushBlob("alice/blob", tok, data)
			b.Run("pull", func(b *testing.B) {
				b.SetBytes(benchBlobBytes)
				defer reportCPU(b)()
				for b.Loop() {
					pullBlob(b, r, "/v2/alice/blob/blobs/"+dgst, tok)
				}
			})
		})
	}
}

// reportCPU reports, when the function it returns is called, the CPU
// seconds per GiB this process (client and server) used since: on a busy
// machine a steadier figure than the time per operation.
func reportCPU(b *testing.B) func() {
	c0 := processCPU(b)
	return func() {
		gib := float64(b.N) * benchBlobBytes / (1 << 30)
		b.ReportMetric((processCPU(b)-c0)/gib, "cpu-s/GiB")
	}
}

func processCPU(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// pullBlob reads a blob into io.Discard.
func pullBlob(b *testing.B, r *testRegistry, path, bearer string) {
	req, err := http.NewRequest(http.MethodGet, r.srv.URL+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != benchBlobBytes {
		b.Fatalf("pull: %d bytes, %v", n, err)
	}
}

// distributionHandler is distribution's handler as NewHandler configures
// it, without the layers NewHandler puts around it.
func distributionHandler(ctx context.Context, cfg *config.Config, tokens *tokenauth.Controller, _ *slog.Logger) (http.Handler, func(), error) {
	if err := configureDistributionLog(os.Stderr, cfg.LogFormat, cfg.LogLevel); err != nil {
		return nil, nil, err
	}
	dcfg, err := distributionConfig(cfg, tokens)
	if err != nil {
		return nil, nil, err
	}
	app, err := newApp(context.WithoutCancel(ctx), dcfg)
	if err != nil {
		return nil, nil, err
	}
	return app, func() { app.Shutdown() }, nil
}
