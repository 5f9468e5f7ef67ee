package main

// Token issuance against the ceiling.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"stx-registry/shared/testrig"
)

// maxReplyBytes bounds reading one token reply.
const maxReplyBytes = 64 << 10

// benchScope is the one push/pull scope every token request asks for.
const benchScope = "repository:" + benchUser + "/app:pull,push"

// tokenQuery is the GET query of a skopeo-like token request.
func (w *workspace) tokenQuery(extra string) string {
	return w.tokenURL(w.tokenAddr, benchScope) + extra
}

// tokenURL is the GET query for scope at the token server at addr.
func (w *workspace) tokenURL(addr, scope string) string {
	return "https://" + addr + "/token/?service=" + url.QueryEscape(w.registryAddr) + "&scope=" + url.QueryEscape(scope)
}

// getToken is one GET with Basic auth; it returns the reply's body.
func getToken(ctx context.Context, c *http.Client, u, user, password string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(user, password)
	return doToken(c, req)
}

func doToken(c *http.Client, req *http.Request) ([]byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: status %d", req.Method, req.URL.Path, resp.StatusCode)
	}
	return b, nil
}

// tokenReply is what the bench reads of a reply.
type tokenReply struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refresh_token"`
}

// benchTokens measures, per run: the ceiling and the token server with
// keep-alive, the refresh grant, and both again with a new TLS connection
// per request.
func (w *workspace) benchTokens(ctx context.Context, s settings, rep *report) error {
	keep, err := w.client(false)
	if err != nil {
		return err
	}
	fresh, err := w.client(true)
	if err != nil {
		return err
	}
	// The first request pays bcrypt; it also gives the reply size and, with
	// offline_token, a refresh token.
	body, err := getToken(ctx, keep, w.tokenQuery("&offline_token=true&client_id=docker"), benchUser, w.password)
	if err != nil {
		return fmt.Errorf("first token request: %w", err)
	}
	var first tokenReply
	if err := json.Unmarshal(body, &first); err != nil || first.Token == "" {
		return fmt.Errorf("first token reply is not a token: %v", err)
	}
	plain, err := getToken(ctx, keep, w.tokenQuery(""), benchUser, w.password)
	if err != nil {
		return err
	}
	if first.RefreshToken == "" {
		return fmt.Errorf("an offline login got no refresh_token although state_directory is set:\n%s", w.token.Tail())
	}

	ceilAddr, err := testrig.FreeAddr()
	if err != nil {
		return err
	}
	ceil, err := w.startDaemon(ctx, "ceiling", ceilAddr, filepath.Join(w.bin, "bench"), "ceiling",
		"-cert", w.layout.ServerCert(), "-key", w.layout.ServerKey(),
		"-addr", ceilAddr, "-size", strconv.Itoa(len(plain)))
	if err != nil {
		return err
	}
	defer ceil.Stop()
	auditAddr, err := testrig.FreeAddr()
	if err != nil {
		return err
	}
	ceilAudit, err := w.startDaemon(ctx, "ceiling-audit", auditAddr, filepath.Join(w.bin, "bench"), "ceiling",
		"-cert", w.layout.ServerCert(), "-key", w.layout.ServerKey(),
		"-addr", auditAddr, "-size", strconv.Itoa(len(plain)), "-audit")
	if err != nil {
		return err
	}
	defer ceilAudit.Stop()
	noReuse, noReuseAddr, err := w.startNoReuse(ctx)
	if err != nil {
		return err
	}
	defer noReuse.Stop()
	// The first request of each pays bcrypt.
	if _, err := getToken(ctx, keep, w.tokenURL(noReuseAddr, benchScope), benchUser, w.password); err != nil {
		return fmt.Errorf("first token request without reuse: %w", err)
	}
	rss, err := w.token.peakRSS()
	if err != nil {
		return err
	}
	rep.add("token_server_rss_idle", "MiB", rss)

	get := func(c *http.Client, u string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := getToken(ctx, c, u, benchUser, w.password)
			return err
		}
	}
	form := url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}, "client_id": {"docker"},
		"service": {w.registryAddr}, "scope": {benchScope},
	}.Encode()
	refresh := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+w.tokenAddr+"/token/", strings.NewReader(form))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		_, err = doToken(keep, req)
		return err
	}
	// The ceilings get the token request itself, query and all: the same
	// request and the same reply bytes.
	ceilURL := w.tokenURL(ceilAddr, benchScope)
	auditURL := w.tokenURL(auditAddr, benchScope)
	measureN := func(name string, p *proc, workers int, do func(context.Context) error) (loadResult, float64, error) {
		cpu0, err := p.cpuSeconds()
		if err != nil {
			return loadResult{}, 0, err
		}
		r := runLoad(ctx, workers, s.tokenCount, s.tokenTime, do)
		if err := r.check(name); err != nil {
			return r, 0, err
		}
		cpu1, err := p.cpuSeconds()
		if err != nil {
			return r, 0, err
		}
		rep.add(name+"_rate", "tokens/s", r.rate())
		rep.add(name+"_p50", "ms", percentile(r.latencies, 50))
		rep.add(name+"_p99", "ms", percentile(r.latencies, 99))
		return r, (cpu1 - cpu0) / float64(r.ok) * 1000, nil
	}
	measure := func(name string, p *proc, do func(context.Context) error) (loadResult, float64, error) {
		return measureN(name, p, s.tokenWorkers, do)
	}
	// Warm the mix's credential caches, so that both servers measure
	// tokens rather than bcrypt.
	for _, addr := range []string{w.tokenAddr, noReuseAddr} {
		if err := w.warmMix(ctx, keep, addr); err != nil {
			return err
		}
	}
	for i := range s.runs {
		w.log.Info("token issuance", "run", i+1)
		c, ccpu, err := measure("ceiling", ceil, get(keep, ceilURL))
		if err != nil {
			return err
		}
		ca, cacpu, err := measure("ceiling_audit", ceilAudit, get(keep, auditURL))
		if err != nil {
			return err
		}
		t, tcpu, err := measure("token", w.token, get(keep, w.tokenQuery("")))
		if err != nil {
			return err
		}
		tnr, tnrcpu, err := measure("token_noreuse", noReuse, get(keep, w.tokenURL(noReuseAddr, benchScope)))
		if err != nil {
			return err
		}
		r, _, err := measure("refresh", w.token, refresh)
		if err != nil {
			return err
		}
		// The ceiling again, after: the machine is shared, and the mean of
		// a ceiling before and after is less skewed by load that comes or
		// goes during the run.
		c2 := runLoad(ctx, s.tokenWorkers, s.tokenCount, s.tokenTime, get(keep, ceilURL))
		if err := c2.check("ceiling"); err != nil {
			return err
		}
		ceiling := (c.rate() + c2.rate()) / 2
		rep.add("token_vs_ceiling_ratio", "ratio", t.rate()/ceiling)
		rep.add("token_noreuse_vs_ceiling_ratio", "ratio", tnr.rate()/ceiling)
		rep.add("ceiling_audit_vs_ceiling_ratio", "ratio", ca.rate()/ceiling)
		rep.add("token_vs_ceiling_audit_ratio", "ratio", t.rate()/ca.rate())
		rep.add("ceiling_audit_cpu_seconds_per_1000", "s", cacpu)
		rep.add("refresh_vs_ceiling_ratio", "ratio", r.rate()/ceiling)
		rep.add("token_cpu_seconds_per_1000", "s", tcpu)
		rep.add("token_noreuse_cpu_seconds_per_1000", "s", tnrcpu)
		rep.add("ceiling_cpu_seconds_per_1000", "s", ccpu)
		cn, _, err := measure("ceiling_newconn", ceil, get(fresh, ceilURL))
		if err != nil {
			return err
		}
		tn, _, err := measure("token_newconn", w.token, get(fresh, w.tokenQuery("")))
		if err != nil {
			return err
		}
		rep.add("token_newconn_vs_ceiling_ratio", "ratio", tn.rate()/cn.rate())

		if err := w.benchMix(ctx, rep, i, keep, noReuse, noReuseAddr, measureN); err != nil {
			return err
		}
	}
	if rss, err = w.token.peakRSS(); err != nil {
		return err
	}
	rep.add("token_server_rss_token_load", "MiB", rss)
	return nil
}
