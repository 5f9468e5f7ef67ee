package main

// The refresh token store at 1k and 100k entries: what one login adding a
// refresh token and one refresh grant looking one up cost, and what a
// refresh grant costs while another user loops logins.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"stx-registry/shared/testrig"
)

// refreshOtherUser is the user whose refresh grants are measured while
// benchUser loops logins; same password.
const refreshOtherUser = "bench-other"

// refreshStoreSizes are the numbers of live refresh tokens of other users
// the store holds when the token server starts.
var refreshStoreSizes = []int{1000, 100000}

// refreshStateHeader and seedRefreshLine are the state file's format
// (stx-token-server(8), FILES): a header line, then one line per issued
// token. The bench writes the seed itself, since issuing 100000 tokens
// through the server would take minutes of fsyncs.
const refreshStateHeader = `{"stx-token-server-refresh-tokens":2}`

type seedRefreshLine struct {
	Hash    string `json:"hash"`
	Subject string `json:"sub"`
	Admin   bool   `json:"admin"`
	Service string `json:"service"`
	Created int64  `json:"created"`
	Expires int64  `json:"expires"`
	Checked int64  `json:"checked"`
}

// seedRefreshState writes a state directory holding n refresh tokens, each
// of its own user, for service.
func seedRefreshState(dir string, n int, service string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "refresh-tokens"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	bw.WriteString(refreshStateHeader + "\n")
	now := time.Now().Unix()
	enc := json.NewEncoder(bw)
	for i := range n {
		var h [32]byte
		rand.Read(h[:])
		enc.Encode(seedRefreshLine{Hash: base64.RawURLEncoding.EncodeToString(h[:]), Subject: fmt.Sprintf("seed%d", i),
			Service: service, Created: now, Expires: now + 24*3600, Checked: now})
	}
	// Flushed to disk, so that no measured fsync pays for the seed.
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchRefreshStore measures, per run and store size, sequential latency of
// a cached GET token (the reference), an offline login (the same plus one
// refresh token added: an append and its fsync, and past
// refresh_token_user_max the drop of the user's oldest), a refresh grant
// (a lookup), and a refresh grant of another user while the bench user
// loops offline logins.
func (w *workspace) benchRefreshStore(ctx context.Context, s settings, rep *report) error {
	c, err := w.client(false)
	if err != nil {
		return err
	}
	count := 300
	if s.quick {
		count = 100
	}
	limit := 30 * time.Second
	if err := testrig.Passwd(ctx, w.layout.Bin.TokenServer, w.layout.Users(), refreshOtherUser, w.password); err != nil {
		return err
	}
	for i := range s.runs {
		for _, n := range refreshStoreSizes {
			w.log.Info("refresh store", "run", i+1, "entries", n)
			name := fmt.Sprintf("refresh-store-%d-%d", n, i)
			state := filepath.Join(w.dir, name)
			if err := seedRefreshState(state, n, w.registryAddr); err != nil {
				return err
			}
			addr, err := testrig.FreeAddr()
			if err != nil {
				return err
			}
			conf := filepath.Join(w.dir, name+".conf")
			err = testrig.EditConf(w.layout.TokenConf(), conf, []string{"listen", "state_directory", "refresh_token_max"},
				"listen "+addr, "state_directory "+state, fmt.Sprintf("refresh_token_max %d", n+10*count))
			if err != nil {
				return err
			}
			p, err := w.startDaemon(ctx, "stx-token-server-"+name, addr, w.layout.Bin.TokenServer, "-f", conf)
			if err != nil {
				return err
			}
			err = w.measureRefreshStore(ctx, c, addr, n, count, limit, rep)
			p.Stop()
			os.RemoveAll(state)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *workspace) measureRefreshStore(ctx context.Context, c *http.Client, addr string, n, count int, limit time.Duration, rep *report) error {
	q := func(extra string) string {
		return "https://" + addr + "/token/?service=" + url.QueryEscape(w.registryAddr) + "&scope=" + url.QueryEscape(benchScope) + extra
	}
	offline := q("&offline_token=true&client_id=docker")
	// The first logins pay bcrypt; the other user's gives the refresh token
	// to look up, which no login of the bench user may drop.
	if _, err := getToken(ctx, c, offline, benchUser, w.password); err != nil {
		return fmt.Errorf("first offline login: %w", err)
	}
	body, err := getToken(ctx, c, offline, refreshOtherUser, w.password)
	if err != nil {
		return fmt.Errorf("offline login of %s: %w", refreshOtherUser, err)
	}
	var other tokenReply
	if err := json.Unmarshal(body, &other); err != nil || other.RefreshToken == "" {
		return fmt.Errorf("an offline login got no refresh_token: %v", err)
	}
	get := func(u string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := getToken(ctx, c, u, benchUser, w.password)
			return err
		}
	}
	refresh := func(rt string) func(context.Context) error {
		form := url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"docker"},
			"service": {w.registryAddr}, "scope": {benchScope},
		}.Encode()
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/token/", strings.NewReader(form))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			_, err = doToken(c, req)
			return err
		}
	}
	record := func(what string, r loadResult) error {
		if err := r.check(what); err != nil {
			return err
		}
		rep.add(fmt.Sprintf("%s_%s_p50", what, sizeName(n)), "ms", percentile(r.latencies, 50))
		rep.add(fmt.Sprintf("%s_%s_p99", what, sizeName(n)), "ms", percentile(r.latencies, 99))
		return nil
	}
	ref := runLoad(ctx, 1, count, limit, get(q("")))
	if err := record("refresh_store_get", ref); err != nil {
		return err
	}
	add := runLoad(ctx, 1, count, limit, get(offline))
	if err := record("refresh_store_add", add); err != nil {
		return err
	}
	lookup := runLoad(ctx, 1, count, limit, refresh(other.RefreshToken))
	if err := record("refresh_store_lookup", lookup); err != nil {
		return err
	}
	// Another user's refresh grants while the bench user loops logins: the
	// measurement of issue 10.
	loopCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { runLoad(loopCtx, 1, 1<<30, limit, get(offline)) })
	during := runLoad(ctx, 1, count, limit, refresh(other.RefreshToken))
	stop()
	wg.Wait()
	if err := record("refresh_store_lookup_during_adds", during); err != nil {
		return err
	}
	rep.add("refresh_store_add_vs_get_"+sizeName(n)+"_ratio", "ratio", percentile(add.latencies, 50)/percentile(ref.latencies, 50))
	rep.add("refresh_store_lookup_vs_get_"+sizeName(n)+"_ratio", "ratio", percentile(lookup.latencies, 50)/percentile(ref.latencies, 50))
	return nil
}

// sizeName is 1k for 1000, 100k for 100000.
func sizeName(n int) string { return fmt.Sprintf("%dk", n/1000) }
