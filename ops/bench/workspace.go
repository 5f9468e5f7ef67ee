package main

// The work directory: binaries, certificates, configurations, daemons.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"stx-registry/shared/testrig"
	"stx-registry/shared/tlsconf"
)

const (
	// buildTimeout bounds building this tool and upstream's registry; a
	// fresh machine downloads upstream's storage driver modules once.
	buildTimeout = 15 * time.Minute
	// startWait bounds a daemon's start until its first HTTP answer.
	startWait = 30 * time.Second
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
	bin        string // dir/bin: this tool and upstream's registry
	run        string // dir/run: demo-config.sh's output
	moduleRoot string
	goVersion  string
	procs      procs
	layout     *testrig.Layout // the daemons' binaries, ports and files

	tokenAddr, registryAddr, upstreamAddr string
	password                              string // benchUser's
	token                                 *proc  // the users-backend token server
}

func newWorkspace(ctx context.Context, log *slog.Logger) (*workspace, error) {
	root, err := testrig.ModuleRoot()
	if err != nil {
		return nil, fmt.Errorf("run the bench from the stx-registry module: %w", err)
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
		moduleRoot: root,
		goVersion:  strings.TrimSpace(string(v)),
	}
	return w, os.MkdirAll(w.bin, 0o700)
}

// build compiles both daemons (testrig), this tool (for the ceiling
// server) and upstream's registry.
func (w *workspace) build(ctx context.Context) error {
	t0 := time.Now()
	if _, err := testrig.BuildDaemons(); err != nil {
		return err
	}
	w.log.Info("built", "binary", "stx-registry stx-token-server", "seconds", int(time.Since(t0).Seconds()))
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	gobuild := func(dir, out, pkg string) error {
		t0 := time.Now()
		if err := testrig.GoBuild(ctx, dir, filepath.Join(w.bin, out), pkg); err != nil {
			return err
		}
		w.log.Info("built", "binary", out, "seconds", int(time.Since(t0).Seconds()))
		return nil
	}
	if err := gobuild(w.moduleRoot, "bench", "./ops/bench"); err != nil {
		return err
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

// setup lays out the demo configuration on free ports, adds benchUser, and
// starts the token server (demo-config.sh's configuration has
// state_directory, so refresh tokens are measured).
func (w *workspace) setup(ctx context.Context) error {
	l, err := testrig.NewLayout(ctx, w.run)
	if err != nil {
		return err
	}
	w.layout = l
	w.tokenAddr, w.registryAddr = l.TokenAddr, l.RegistryAddr
	if w.upstreamAddr, err = testrig.FreeAddr(); err != nil {
		return err
	}
	w.password = testrig.RandomHex(16)
	if err := testrig.Passwd(ctx, l.Bin.TokenServer, l.Users(), benchUser, w.password); err != nil {
		return err
	}
	if err := w.addMixUsers(ctx); err != nil {
		return err
	}
	w.token, err = w.startDaemon(ctx, "stx-token-server", w.tokenAddr, l.Bin.TokenServer, "-f", l.TokenConf())
	return err
}

// startDaemon starts a daemon listening on addr and waits until it answers
// HTTPS (any status: upstream's registry has no health path without
// authentication).
func (w *workspace) startDaemon(ctx context.Context, name, addr string, argv ...string) (*proc, error) {
	p, err := w.procs.start(name, filepath.Join(w.dir, name+".log"), argv...)
	if err != nil {
		return nil, err
	}
	c, err := w.client(false)
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(ctx, c, "https://"+addr+"/healthz", testrig.Answered, startWait); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s: %w:\n%s", name, err, p.Tail())
	}
	return p, nil
}

// client is an HTTPS client trusting only the demo CA; with newConn every
// request opens a new TLS connection. HTTP/1.1, like the registry clients.
func (w *workspace) client(newConn bool) (*http.Client, error) {
	cfg, err := tlsconf.ClientConfig(w.layout.CAFile())
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
	cfg, err := tlsconf.ClientConfig(w.layout.CAFile())
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: pullTimeout, Transport: &http.Transport{TLSClientConfig: cfg.Clone(), TLSHandshakeTimeout: requestTimeout}}, nil
}
