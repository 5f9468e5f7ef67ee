package main

// Concurrency: many clients pulling one image at once from each registry,
// and many token requests at once.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"stx-registry/shared/testrig"
)

// maxManifestBytes bounds reading a manifest (distribution's own limit is
// 4 MiB).
const maxManifestBytes = 4 << 20

// rawPull is one client's pull over plain HTTP: a token, the manifest, then
// every blob, its digest and size checked.
func (w *workspace) rawPull(ctx context.Context, addr, repo string) error {
	c, err := w.crowdClient()
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	u := "https://" + w.tokenAddr + "/token/?service=" + url.QueryEscape(w.registryAddr) +
		"&scope=" + url.QueryEscape("repository:"+repo+":pull")
	body, err := getToken(ctx, c, u, benchUser, w.password)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tr, err := parseTokenReply(body)
	if err != nil {
		return err
	}
	get := func(path, accept string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v2/"+repo+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tr.Token)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
		}
		return resp, nil
	}
	resp, err := get("/manifests/"+imageTag, testrig.MediaManifest)
	if err != nil {
		return err
	}
	var m testrig.Manifest
	err = json.NewDecoder(io.LimitReader(resp.Body, maxManifestBytes)).Decode(&m)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	for _, d := range append([]testrig.Descriptor{m.Config}, m.Layers...) {
		resp, err := get("/blobs/"+d.Digest, "")
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, io.LimitReader(resp.Body, d.Size+1))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("blob %s: %w", d.Digest, err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != d.Size || got != d.Digest {
			return fmt.Errorf("blob %s: got %d bytes with digest %s", d.Digest, n, got)
		}
	}
	return nil
}

// benchConcurrency runs, per run on new storage: parallel pulls from each
// registry (alternating which goes first), then parallel token requests.
func (w *workspace) benchConcurrency(ctx context.Context, s settings, rep *report) error {
	img, err := testrig.NewImage(filepath.Join(w.dir, "image-parallel"), imageTag, s.concLayers, s.concLayerBytes, testrig.Tar)
	if err != nil {
		return err
	}
	fresh, err := w.client(true)
	if err != nil {
		return err
	}
	const repo = benchUser + "/parallel"
	for run := range s.runs {
		w.log.Info("concurrency", "run", run+1)
		regs, err := w.startRegistries(ctx, fmt.Sprint("parallel-", run))
		if err != nil {
			return err
		}
		err = func() error {
			defer regs.stop()
			type target struct {
				suffix, addr string
				proc         *proc
			}
			targets := []target{{"", w.registryAddr, regs.stx}, {"_upstream", w.upstreamAddr, regs.upstream}}
			if run%2 == 1 {
				targets[0], targets[1] = targets[1], targets[0]
			}
			for _, t := range targets {
				if _, err := w.push(ctx, img, t.addr, repo); err != nil {
					return err
				}
			}
			for _, t := range targets {
				pctx, cancel := context.WithTimeout(ctx, pullTimeout)
				r := burst(pctx, s.parallelPulls, func(ctx context.Context) error { return w.rawPull(ctx, t.addr, repo) })
				cancel()
				if r.failed > 0 {
					w.log.Warn("parallel pulls failed", "registry", "stx"+t.suffix, "failed", r.failed, "first", r.firstErr)
				}
				rep.add("parallel_pulls"+t.suffix+"_ok", "pulls", float64(r.ok))
				rep.add("parallel_pulls"+t.suffix+"_wall", "s", r.elapsed.Seconds())
				rep.add("parallel_pulls"+t.suffix+"_p99", "ms", percentile(r.latencies, 99))
			}
			for _, p := range []struct {
				name string
				proc *proc
			}{{"registry_rss_parallel_pulls", regs.stx}, {"upstream_rss_parallel_pulls", regs.upstream}} {
				v, err := p.proc.peakRSS()
				if err != nil {
					return err
				}
				rep.add(p.name, "MiB", v)
			}
			return nil
		}()
		if err != nil {
			return err
		}

		// Every request of the crowd on its own new TLS connection.
		tctx, cancel := context.WithTimeout(ctx, time.Minute)
		r := burst(tctx, s.parallelTokens, func(ctx context.Context) error {
			_, err := getToken(ctx, fresh, w.tokenQuery(""), benchUser, w.password)
			return err
		})
		cancel()
		if r.failed > 0 {
			w.log.Warn("parallel token requests failed", "failed", r.failed, "first", r.firstErr)
		}
		rep.add("parallel_tokens_errors", "errors", float64(r.failed))
		rep.add("parallel_tokens_wall", "s", r.elapsed.Seconds())
		rep.add("parallel_tokens_p99", "ms", percentile(r.latencies, 99))
	}
	v, err := w.token.peakRSS()
	if err != nil {
		return err
	}
	rep.add("token_server_rss_parallel_tokens", "MiB", v)
	return nil
}
