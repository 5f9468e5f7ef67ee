package main

// Keystone load: how many Keystone calls the token server makes for many
// token requests, against a real Keystone run by ops/test-keystone.sh.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	// keystoneStartWait bounds test-keystone.sh: db_sync, key repositories
	// and bootstrap take 15-30 s on a busy 2-core machine.
	keystoneStartWait = 120 * time.Second
	// keystoneCallTimeout bounds one admin REST call (wsgiref serves one
	// request at a time).
	keystoneCallTimeout = 30 * time.Second
	// keystoneWriteTries: the sqlite backend sometimes answers 500 to a
	// write.
	keystoneWriteTries = 5
	// maxMetricsBytes bounds reading the token server's /metrics.
	maxMetricsBytes = 1 << 20
)

type keystone struct {
	url, adminPassword, adminToken string
	client                         *http.Client
}

// startKeystone runs ops/test-keystone.sh on a free port and waits for
// GET /v3.
func (w *workspace) startKeystone(ctx context.Context) (*keystone, *proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	k := &keystone{url: "http://" + addr + "/v3", adminPassword: randomHex(12), client: &http.Client{Timeout: keystoneCallTimeout}}
	// The script execs keystone-wsgi-public, so the PID is Keystone's.
	p, err := w.procs.start("keystone", filepath.Join(w.dir, "keystone-access.log"), nil,
		"sh", filepath.Join(w.moduleRoot, "ops", "test-keystone.sh"), filepath.Join(w.dir, "keystone"), port, k.adminPassword)
	if err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(keystoneStartWait)
	for {
		if p.exited() {
			b, _ := os.ReadFile(filepath.Join(w.dir, "keystone", "keystone-manage.log"))
			return nil, nil, fmt.Errorf("ops/test-keystone.sh exited at start:\n%s\n%s", p.tail(), tailBytes(b))
		}
		if resp, err := k.client.Get(k.url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, nil, fmt.Errorf("keystone did not answer GET %s within %v:\n%s", k.url, keystoneStartWait, p.tail())
		}
		time.Sleep(pollInterval * 5)
	}
	status, hdr, body, err := k.call(http.MethodPost, "/auth/tokens", passwordAuth("admin", k.adminPassword, "admin"))
	if err != nil {
		return nil, nil, err
	}
	if status != http.StatusCreated || hdr.Get("X-Subject-Token") == "" {
		return nil, nil, fmt.Errorf("keystone admin login: status %d: %s", status, body)
	}
	k.adminToken = hdr.Get("X-Subject-Token")
	return k, p, nil
}

func tailBytes(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// passwordAuth is the body of a password login, scoped to a project of the
// Default domain unless project is "".
func passwordAuth(user, password, project string) map[string]any {
	auth := map[string]any{
		"identity": map[string]any{
			"methods": []string{"password"},
			"password": map[string]any{"user": map[string]any{
				"name": user, "domain": map[string]string{"name": "Default"}, "password": password,
			}},
		},
	}
	if project != "" {
		auth["scope"] = map[string]any{"project": map[string]any{"name": project, "domain": map[string]string{"name": "Default"}}}
	}
	return map[string]any{"auth": auth}
}

// call sends one JSON request, trying again while Keystone answers 500.
func (k *keystone) call(method, path string, body any) (int, http.Header, []byte, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return 0, nil, nil, err
	}
	for try := 1; ; try++ {
		req, err := http.NewRequest(method, k.url+path, bytes.NewReader(payload))
		if err != nil {
			return 0, nil, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if k.adminToken != "" {
			req.Header.Set("X-Auth-Token", k.adminToken)
		}
		resp, err := k.client.Do(req)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("keystone %s %s: %w", method, path, err)
		}
		out, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
		resp.Body.Close()
		if err != nil {
			return 0, nil, nil, err
		}
		if resp.StatusCode != http.StatusInternalServerError || try == keystoneWriteTries {
			return resp.StatusCode, resp.Header, out, nil
		}
		time.Sleep(time.Duration(try) * 200 * time.Millisecond)
	}
}

// createUser makes an enabled user in the Default domain. A 409 after a
// 500 means the write happened.
func (k *keystone) createUser(name, password string) error {
	status, _, body, err := k.call(http.MethodPost, "/users", map[string]any{"user": map[string]any{
		"name": name, "domain_id": "default", "enabled": true, "password": password,
	}})
	if err != nil {
		return err
	}
	if status != http.StatusCreated && status != http.StatusConflict {
		return fmt.Errorf("keystone create user %s: status %d: %s", name, status, body)
	}
	return nil
}

// startKeystoneTokenServer starts a token server checking passwords
// against k: demo-config.sh's configuration with the Keystone backend and
// no refresh tokens.
func (w *workspace) startKeystoneTokenServer(ctx context.Context, k *keystone, run int) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	raw, err := os.ReadFile(filepath.Join(w.run, "stx-token-server.conf"))
	if err != nil {
		return nil, "", err
	}
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		switch kw, _, _ := strings.Cut(line, " "); kw {
		case "auth_backend", "users_file", "state_directory", "listen":
			continue
		}
		kept = append(kept, line)
	}
	kept = append(kept, "listen "+addr, "auth_backend keystone", "keystone_url "+k.url, "keystone_timeout 5s")
	conf := filepath.Join(w.dir, fmt.Sprintf("stx-token-server-keystone-%d.conf", run))
	if err := os.WriteFile(conf, []byte(strings.Join(kept, "\n")+"\n"), 0o600); err != nil {
		return nil, "", err
	}
	p, err := w.startDaemon(ctx, fmt.Sprintf("stx-token-server-keystone-%d", run), addr, filepath.Join(w.bin, "stx-token-server"), "-f", conf)
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
	k, kp, err := w.startKeystone(ctx)
	if err != nil {
		return err
	}
	defer kp.stop()
	c, err := w.client(false)
	if err != nil {
		return err
	}
	for run := range s.runs {
		users := map[string]string{}
		for _, phase := range []string{"seq", "conc", "bad"} {
			u := fmt.Sprintf("k%s%d", phase, run)
			users[phase] = u
			if err := k.createUser(u, u+"-"+w.password); err != nil {
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
			tp.stop()
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
			tp.stop()
			return err
		}
		n, err := calls()
		if err != nil {
			tp.stop()
			return err
		}
		rep.add("keystone_calls_sequential", "calls", n)
		total += n
		// Concurrent first requests of one user share one call.
		r = burst(ctx, s.ksConcurrent, get(users["conc"], users["conc"]+"-"+w.password))
		if err := r.check("keystone concurrent cold"); err != nil {
			tp.stop()
			return err
		}
		if n, err = calls(); err != nil {
			tp.stop()
			return err
		}
		rep.add("keystone_calls_concurrent_cold", "calls", n)
		total += n
		// Bad passwords: 401, then 429 once the backoff holds the user;
		// every answer is expected, only a transport error is not.
		bad := getBad(c, q, users["bad"])
		r = runLoad(ctx, 1, s.ksBad, 5*time.Minute, bad)
		if err := r.check("keystone bad passwords"); err != nil {
			tp.stop()
			return err
		}
		if n, err = calls(); err != nil {
			tp.stop()
			return err
		}
		rep.add("keystone_calls_bad_passwords", "calls", n)
		total += n
		tp.stop()
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
		req.SetBasicAuth(user, "wrong-"+randomHex(4))
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
