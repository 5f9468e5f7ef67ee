package main

// Token reuse: a second token server with token_reuse_percent 0, measured
// in the same run as the first, and the realistic mix of many users each
// pulling many repositories.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"stx-registry/shared/testrig"
)

const (
	// The realistic mix: mixClients clients as mixUsers users, each user
	// pulling mixRepos different repositories of its own, so that
	// mixUsers×mixRepos distinct (user, scope) pairs are asked for, each
	// by several clients.
	mixClients = 200
	mixUsers   = 20
	mixRepos   = 50
)

// mixUser is the name of the i-th user of the mix.
func mixUser(i int) string { return fmt.Sprintf("mix%02d", i) }

// addMixUsers adds the mix's users to the users file, all with w.password.
func (w *workspace) addMixUsers(ctx context.Context) error {
	for i := range mixUsers {
		if err := testrig.Passwd(ctx, w.layout.Bin.TokenServer, w.layout.Users(), mixUser(i), w.password); err != nil {
			return err
		}
	}
	return nil
}

// startNoReuse starts a second token server on the same users file and
// keys with token_reuse_percent 0 (and no refresh tokens), and returns it
// with its address.
func (w *workspace) startNoReuse(ctx context.Context) (*proc, string, error) {
	addr, err := testrig.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	conf := filepath.Join(w.dir, "stx-token-server-noreuse.conf")
	if err := testrig.EditConf(w.layout.TokenConf(), conf, []string{"listen", "state_directory", "token_reuse_percent"},
		"listen "+addr, "token_reuse_percent 0"); err != nil {
		return nil, "", err
	}
	p, err := w.startDaemon(ctx, "stx-token-server-noreuse", addr, w.layout.Bin.TokenServer, "-f", conf)
	return p, addr, err
}

// mixScope is the pull scope of user's repository repo.
func mixScope(user string, repo int) string {
	return fmt.Sprintf("repository:%s/repo%02d:pull", user, repo)
}

// warmMix logs every mix user in once at the token server at addr, so that
// the loads find their passwords in the credential cache: they measure
// tokens, not bcrypt.
func (w *workspace) warmMix(ctx context.Context, c *http.Client, addr string) error {
	for i := range mixUsers {
		if _, err := getToken(ctx, c, w.tokenURL(addr, ""), mixUser(i), w.password); err != nil {
			return fmt.Errorf("mix user %s at %s: %w", mixUser(i), addr, err)
		}
	}
	return nil
}

// mixLoad is one request of the mix per call: request n is user n%mixUsers
// pulling its repository (n/mixUsers)%mixRepos, from the token server at
// addr.
func (w *workspace) mixLoad(c *http.Client, addr string) func(context.Context) error {
	var next atomic.Int64
	return func(ctx context.Context) error {
		n := int(next.Add(1) - 1)
		user := mixUser(n % mixUsers)
		_, err := getToken(ctx, c, w.tokenURL(addr, mixScope(user, (n/mixUsers)%mixRepos)), user, w.password)
		return err
	}
}

// hangupWait bounds waiting for a token server to log its SIGHUP reload.
const hangupWait = 10 * time.Second

// dropKept sends the token server p SIGHUP, which drops every token kept
// for reuse, and waits until it has logged the reload: each run's mix
// then starts from an empty cache.
func dropKept(ctx context.Context, p *proc) error {
	mark := p.LogSize()
	if err := p.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	deadline := time.Now().Add(hangupWait)
	for !bytes.Contains(p.LogSince(mark), []byte("signing keys reloaded")) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log a reload within %v of SIGHUP:\n%s", p.name, hangupWait, p.Tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// measureFunc runs one load of workers clients against p and records its
// rate and latencies as name; it returns the load and p's CPU seconds per
// 1000 requests.
type measureFunc func(name string, p *proc, workers int, do func(context.Context) error) (loadResult, float64, error)

// benchMix measures run's realistic mix with reuse (w.token) and without
// (noReuse at noReuseAddr), over c.
func (w *workspace) benchMix(ctx context.Context, rep *report, run int, c *http.Client, noReuse *proc, noReuseAddr string, measure measureFunc) error {
	// The realistic mix, with reuse and without: every client's
	// connection is opened first, then the reuse cache is emptied, so
	// that each load starts with its 1000 signatures and no handshake.
	for _, addr := range []string{w.tokenAddr, noReuseAddr} {
		if err := burst(ctx, mixClients, w.mixLoad(c, addr)).check("mix connections"); err != nil {
			return err
		}
	}
	if err := dropKept(ctx, w.token); err != nil {
		return err
	}
	// Which goes first alternates between runs, against drift.
	mixes := []struct {
		name, addr string
		p          *proc
	}{{"token_mix", w.tokenAddr, w.token}, {"token_mix_noreuse", noReuseAddr, noReuse}}
	if run%2 == 1 {
		slices.Reverse(mixes)
	}
	rates := map[string]float64{}
	for _, m := range mixes {
		r, _, err := measure(m.name, m.p, mixClients, w.mixLoad(c, m.addr))
		if err != nil {
			return err
		}
		rates[m.name] = r.rate()
	}
	rep.add("token_mix_vs_noreuse_ratio", "ratio", rates["token_mix"]/rates["token_mix_noreuse"])
	return nil
}
