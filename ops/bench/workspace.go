package main

// The work directory: binaries, certificates, configurations, daemons.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"stx-registry/shared/tlsconf"
)

const (
	// buildTimeout bounds building the daemons and upstream's registry; a
	// fresh machine downloads upstream's storage driver modules once.
	buildTimeout = 15 * time.Minute
	// setupTimeout bounds demo-config.sh and a passwd run (bcrypt).
	setupTimeout = 60 * time.Second
	// startWait bounds a daemon's start until its first HTTP answer.
	startWait = 30 * time.Second
	// pollInterval is the pause between start-up checks.
	pollInterval = 100 * time.Millisecond
	// upstreamModule is the registry compared against, built from the
	// module cache at the version go.mod requires.
	upstreamModule = "github.com/distribution/distribution/v3"
	// benchUser owns the bench/ namespace the images are pushed to.
	benchUser = "bench"
	// benchIssuer is demo-config.sh's issuer.
	benchIssuer = "stx-token-server"
)

type workspace struct {
	log        *slog.Logger
	dir        string // the temporary work directory
	bin        string // dir/bin: the built binaries
	run        string // dir/run: demo-config.sh's output
	moduleRoot string
	goVersion  string
	procs      procs

	tokenAddr, registryAddr, upstreamAddr string
	password                              string // benchUser's
	token                                 *proc  // the users-backend token server
	refresh                               bool   // the token server has state_directory
}

func newWorkspace(ctx context.Context, log *slog.Logger) (*workspace, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		return nil, fmt.Errorf("run the bench from the stx-registry module (go env GOMOD: %v)", err)
	}
	v, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOVERSION: %w", err)
	}
	dir, err := os.MkdirTemp("", "stx-bench-")
	if err != nil {
		return nil, err
	}
	w := &workspace{
		log: log, dir: dir, bin: filepath.Join(dir, "bin"), run: filepath.Join(dir, "run"),
		moduleRoot: filepath.Dir(strings.TrimSpace(string(out))),
		goVersion:  strings.TrimSpace(string(v)),
	}
	return w, os.MkdirAll(w.bin, 0o700)
}

// build compiles both daemons, upstream's registry and this tool (for the
// ceiling server) into w.bin.
func (w *workspace) build(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	gobuild := func(dir, out, pkg string) error {
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(w.bin, out), pkg)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		w.log.Info("built", "binary", out, "seconds", int(time.Since(t0).Seconds()))
		return nil
	}
	for _, b := range [][2]string{{"stx-registry", "./registry"}, {"stx-token-server", "./token"}, {"bench", "./ops/bench"}} {
		if err := gobuild(w.moduleRoot, b[0], b[1]); err != nil {
			return err
		}
	}
	// Upstream is built inside its own module directory in the module
	// cache, with its own go.sum, so that this module's go.mod is not
	// touched by its many storage driver dependencies.
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", upstreamModule)
	cmd.Dir = w.moduleRoot
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go list -m %s: %w", upstreamModule, err)
	}
	src := strings.TrimSpace(string(out))
	if src == "" {
		return fmt.Errorf("%s is not in the module cache: run go mod download %s", upstreamModule, upstreamModule)
	}
	return gobuild(src, "upstream-registry", "./cmd/registry")
}

// setup lays out the demo configuration on free ports, adds benchUser and a
// refresh token state directory, and starts the token server.
func (w *workspace) setup(ctx context.Context) error {
	var err error
	for _, a := range []*string{&w.tokenAddr, &w.registryAddr, &w.upstreamAddr} {
		if *a, err = freeAddr(); err != nil {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	cmd := exec.CommandContext(sctx, "sh", filepath.Join(w.moduleRoot, "ops", "demo-config.sh"), w.run, w.bin)
	cmd.Env = append(os.Environ(), "REGISTRY_ADDR="+w.registryAddr, "TOKEN_ADDR="+w.tokenAddr)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ops/demo-config.sh: %w\n%s", err, b)
	}
	w.password = randomHex(16)
	cmd = exec.CommandContext(sctx, filepath.Join(w.bin, "stx-token-server"), "passwd", "-f", filepath.Join(w.run, "users"), benchUser)
	cmd.Stdin = strings.NewReader(w.password + "\n")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stx-token-server passwd %s: %w\n%s", benchUser, err, b)
	}
	// Refresh tokens need a state directory; demo-config.sh may already
	// give one.
	conf := filepath.Join(w.run, "stx-token-server.conf")
	raw, err := os.ReadFile(conf)
	if err != nil {
		return err
	}
	if !hasKeyword(string(raw), "state_directory") {
		state := filepath.Join(w.run, "state")
		if err := os.Mkdir(state, 0o700); err != nil {
			return err
		}
		if err := appendLines(conf, "state_directory "+state); err != nil {
			return err
		}
		cmd = exec.CommandContext(sctx, filepath.Join(w.bin, "stx-token-server"), "-t", "-f", conf)
		if b, err := cmd.CombinedOutput(); err != nil {
			// A token server without refresh tokens: measure the rest.
			w.log.Warn("the token server does not take state_directory; no refresh measurements", "err", strings.TrimSpace(string(b)))
			if err := os.WriteFile(conf, raw, 0o600); err != nil {
				return err
			}
		}
	}
	raw, _ = os.ReadFile(conf)
	w.refresh = hasKeyword(string(raw), "state_directory")
	w.token, err = w.startDaemon(ctx, "stx-token-server", w.tokenAddr, filepath.Join(w.bin, "stx-token-server"), "-f", conf)
	return err
}

// startDaemon starts a daemon listening on addr and waits until it answers
// HTTPS (any status: upstream's registry has no health path without
// authentication).
func (w *workspace) startDaemon(ctx context.Context, name, addr string, argv ...string) (*proc, error) {
	p, err := w.procs.start(name, filepath.Join(w.dir, name+".log"), nil, argv...)
	if err != nil {
		return nil, err
	}
	c, err := w.client(false)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(startWait)
	for {
		if p.exited() {
			return nil, fmt.Errorf("%s exited at start:\n%s", name, p.tail())
		}
		if resp, err := c.Get("https://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return p, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("%s did not answer on %s within %v:\n%s", name, addr, startWait, p.tail())
		}
		time.Sleep(pollInterval)
	}
}

// client is an HTTPS client trusting only the demo CA; with newConn every
// request opens a new TLS connection. HTTP/1.1, like the registry clients.
func (w *workspace) client(newConn bool) (*http.Client, error) {
	cfg, err := tlsconf.ClientConfig(filepath.Join(w.run, "ca.pem"))
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			TLSClientConfig:     cfg,
			DisableKeepAlives:   newConn,
			MaxIdleConnsPerHost: maxClients,
			// A new TLS connection per request leaves sockets in TIME_WAIT;
			// the kernel reuses them.
			DialContext: (&net.Dialer{Timeout: requestTimeout}).DialContext,
		},
	}, nil
}

// crowdClient is one client of a crowd (parallel pulls), with its own
// connections.
func (w *workspace) crowdClient() (*http.Client, error) {
	cfg, err := tlsconf.ClientConfig(filepath.Join(w.run, "ca.pem"))
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: pullTimeout, Transport: &http.Transport{TLSClientConfig: cfg.Clone(), TLSHandshakeTimeout: requestTimeout}}, nil
}

func hasKeyword(conf, kw string) bool {
	for _, line := range strings.Split(conf, "\n") {
		if k, _, _ := strings.Cut(strings.TrimSpace(line), " "); k == kw {
			return true
		}
	}
	return false
}

func appendLines(path string, lines ...string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// freeAddr picks a free 127.0.0.1 port. Another process could take it
// before the daemon listens; on this test machine nobody does.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
