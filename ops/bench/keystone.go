package main

// Keystone load: how many Keystone calls the token server makes for many
// token requests, against a real Keystone run by ops/test-keystone.sh.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"stx-registry/shared/testrig"
)

// maxMetricsBytes bounds reading the token server's /metrics.
const maxMetricsBytes = 1 << 20

// startKeystone starts a throwaway Keystone (testrig) and tracks its
// process with the bench's others.
func (w *workspace) startKeystone(ctx context.Context) (*testrig.Keystone, error) {
	k, err := testrig.StartKeystone(ctx, w.dir)
	if err != nil {
		return nil, err
	}
	w.procs.track("keystone", k.Proc())
	return k, nil
}

// startKeystoneTokenServer starts a token server checking passwords
// against k: demo-config.sh's configuration with the Keystone backend and
// no refresh tokens.
func (w *workspace) startKeystoneTokenServer(ctx context.Context, k *testrig.Keystone, run int) (*proc, string, error) {
	addr, err := testrig.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	conf := filepath.Join(w.dir, fmt.Sprintf("stx-token-server-keystone-%d.conf", run))
	err = testrig.EditConf(w.layout.TokenConf(), conf, []string{"auth_backend", "users_file", "state_directory", "listen"},
		"listen "+addr, "auth_backend keystone", "keystone_url "+k.URL, "keystone_timeout 5s")
	if err != nil {
		return nil, "", err
	}
	p, err := w.startDaemon(ctx, fmt.Sprintf("stx-token-server-keystone-%d", run), addr, w.layout.Bin.TokenServer, "-f", conf)
	return p, addr, err
}

// keystoneCalls sums stx_backend_calls_total{backend="keystone"} over its
// results.
func keystoneCalls(ctx context.Context, c *http.Client, addr string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(io.LimitReader(resp.Body, maxMetricsBytes))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, `stx_backend_calls_total{backend="keystone"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no stx_backend_calls_total{backend=\"keystone\"} in /metrics")
	}
	return sum, sc.Err()
}

// benchKeystone runs the three phases once per run, each run with new
// users and a new token server (a cold cache and no backoff state).
func (w *workspace) benchKeystone(ctx context.Context, s settings, rep *report) error {
	k, err := w.startKeystone(ctx)
	if err != nil {
		return err
	}
	defer k.Stop()
	c, err := w.client(false)
	if err != nil {
		return err
	}
	for run := range s.runs {
		users := map[string]string{}
		for _, phase := range []string{"seq", "conc", "bad"} {
			u := fmt.Sprintf("k%s%d", phase, run)
			users[phase] = u
			if _, err := k.CreateUser(u, u+"-"+w.password); err != nil {
				return err
			}
		}
		tp, addr, err := w.startKeystoneTokenServer(ctx, k, run)
		if err != nil {
			return err
		}
		q := "https://" + addr + "/token/?service=" + w.registryAddr + "&scope=repository:" + users["seq"] + "/app:pull"
		get := func(user, password string) func(context.Context) error {
			return func(ctx context.Context) error {
				_, err := getToken(ctx, c, q, user, password)
				return err
			}
		}
		before, err := keystoneCalls(ctx, c, addr)
		if err != nil {
			tp.Stop()
			return err
		}
		calls := func() (float64, error) {
			n, err := keystoneCalls(ctx, c, addr)
			d := n - before
			before = n
			return d, err
		}
		var total float64
		// One user, sequential requests: one Keystone call, then the cache.
		r := runLoad(ctx, 1, s.ksSequential, 5*time.Minute, get(users["seq"], users["seq"]+"-"+w.password))
		if err := r.check("keystone sequential"); err != nil {
			tp.Stop()
			return err
		}
		n, err := calls()
		if err != nil {
			tp.Stop()
			return err
		}
		rep.add("keystone_calls_sequential", "calls", n)
		total += n
		// Concurrent first requests of one user share one call.
		r = burst(ctx, s.ksConcurrent, get(users["conc"], users["conc"]+"-"+w.password))
		if err := r.check("keystone concurrent cold"); err != nil {
			tp.Stop()
			return err
		}
		if n, err = calls(); err != nil {
			tp.Stop()
			return err
		}
		rep.add("keystone_calls_concurrent_cold", "calls", n)
		total += n
		// Bad passwords: 401, then 429 once the backoff holds the user;
		// every answer is expected, only a transport error is not.
		bad := getBad(c, q, users["bad"])
		r = runLoad(ctx, 1, s.ksBad, 5*time.Minute, bad)
		if err := r.check("keystone bad passwords"); err != nil {
			tp.Stop()
			return err
		}
		if n, err = calls(); err != nil {
			tp.Stop()
			return err
		}
		rep.add("keystone_calls_bad_passwords", "calls", n)
		total += n
		tp.Stop()
		requests := float64(s.ksSequential + s.ksConcurrent + s.ksBad)
		rep.add("keystone_requests_per_call", "requests/call", requests/max(total, 1))
	}
	return nil
}

// getBad sends a wrong password and wants 401 or 429.
func getBad(c *http.Client, u, user string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.SetBasicAuth(user, "wrong-"+testrig.RandomHex(4))
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxReplyBytes))
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusTooManyRequests {
			return fmt.Errorf("bad password: status %d, want 401 or 429", resp.StatusCode)
		}
		return nil
	}
}
