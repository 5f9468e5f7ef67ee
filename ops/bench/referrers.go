package main

// The referrers listing (OCI 1.1) against a tag listing of the same size
// in the same repository, on stx-registry (upstream has no referrers API).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"stx-registry/shared/testrig"
)

const (
	// referrersRepo is where the referrers step pushes.
	referrersRepo = benchUser + "/referrers"
	// listPage is the page size both listings are asked for: the bound of
	// stx-registry's referrers pages and of distribution's tag pages.
	listPage = 1000
	// pushWorkers push the manifests of the referrers step concurrently.
	pushWorkers = 8
	// maxListBytes bounds reading one listing.
	maxListBytes = 8 << 20
)

// emptyJSON is the OCI empty descriptor's content, the config and only
// layer of every artifact pushed.
var emptyJSON = []byte("{}")

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// benchReferrers measures, per run on new storage: the time of GET
// referrers of a subject with s.referrers referrers, among s.unrelated
// other manifests, against GET tags/list of as many tags in the same
// repository; both as one page.
func (w *workspace) benchReferrers(ctx context.Context, s settings, rep *report) error {
	c, err := w.client(false)
	if err != nil {
		return err
	}
	for run := range s.runs {
		w.log.Info("referrers", "run", run+1)
		regs, err := w.startRegistries(ctx, fmt.Sprint("referrers-", run))
		if err != nil {
			return err
		}
		err = w.referrersRun(ctx, c, s, rep)
		regs.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *workspace) referrersRun(ctx context.Context, c *http.Client, s settings, rep *report) error {
	u := "https://" + w.tokenAddr + "/token/?service=" + url.QueryEscape(w.registryAddr) +
		"&scope=" + url.QueryEscape("repository:"+referrersRepo+":pull,push")
	body, err := getToken(ctx, c, u, benchUser, w.password)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	var tr tokenReply
	if err := json.Unmarshal(body, &tr); err != nil || tr.Token == "" {
		return fmt.Errorf("token reply without a token: %v", err)
	}
	api := func(method, path string, body []byte, header http.Header) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, "https://"+w.registryAddr+"/v2/"+referrersRepo+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("Authorization", "Bearer "+tr.Token)
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxListBytes))
		return resp.StatusCode, b, err
	}
	// The one blob every artifact names, pushed with POST then PUT.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+w.registryAddr+"/v2/"+referrersRepo+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tr.Token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("start upload: status %d: %w", resp.StatusCode, err)
	}
	q := loc.Query()
	q.Set("digest", sha256Hex(emptyJSON))
	loc.RawQuery = q.Encode()
	if st, b, err := api(http.MethodPut, strings.TrimPrefix(loc.RequestURI(), "/v2/"+referrersRepo), emptyJSON,
		http.Header{"Content-Type": {"application/octet-stream"}}); err != nil || st != http.StatusCreated {
		return fmt.Errorf("upload the empty blob: status %d %s: %v", st, b, err)
	}

	subject := sha256Hex([]byte("bench subject"))
	artifact := func(i int, withSubject bool) []byte {
		m := map[string]any{
			"schemaVersion": 2,
			"mediaType":     testrig.MediaManifest,
			"artifactType":  "application/vnd.example.signature.v1",
			"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256Hex(emptyJSON), "size": 2},
			"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256Hex(emptyJSON), "size": 2}},
			"annotations":   map[string]string{"n": fmt.Sprint(i)},
		}
		if withSubject {
			m["subject"] = map[string]any{"mediaType": testrig.MediaManifest, "digest": subject, "size": 100}
		}
		b, _ := json.Marshal(m)
		return b
	}
	// The referrers, each also tagged, so the tag list is as long; then the
	// unrelated manifests, by digest.
	t0 := time.Now()
	err = pushAll(s.referrers+s.unrelated, func(i int) error {
		ref, b := "", []byte(nil)
		if i < s.referrers {
			b = artifact(i, true)
			ref = fmt.Sprintf("t%05d", i)
		} else {
			b = artifact(i, false)
			ref = sha256Hex(b)
		}
		st, body, err := api(http.MethodPut, "/manifests/"+ref, b, http.Header{"Content-Type": {testrig.MediaManifest}})
		if err != nil || st != http.StatusCreated {
			return fmt.Errorf("push manifest %d: status %d %s: %v", i, st, body, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.log.Info("referrers pushed", "referrers", s.referrers, "unrelated", s.unrelated, "seconds", int(time.Since(t0).Seconds()))

	measure := func(path string, count func([]byte) (int, error)) ([]time.Duration, error) {
		var lat []time.Duration
		for range s.listRepeats {
			t := time.Now()
			st, b, err := api(http.MethodGet, path, nil, nil)
			d := time.Since(t)
			if err != nil || st != http.StatusOK {
				return nil, fmt.Errorf("GET %s: status %d: %v", path, st, err)
			}
			if n, err := count(b); err != nil || n != min(s.referrers, listPage) {
				return nil, fmt.Errorf("GET %s: %d entries, want %d: %v", path, n, min(s.referrers, listPage), err)
			}
			lat = append(lat, d)
		}
		slices.Sort(lat)
		return lat, nil
	}
	refs, err := measure(fmt.Sprintf("/referrers/%s?n=%d", subject, listPage), func(b []byte) (int, error) {
		var idx struct{ Manifests []json.RawMessage }
		err := json.Unmarshal(b, &idx)
		return len(idx.Manifests), err
	})
	if err != nil {
		return err
	}
	tags, err := measure(fmt.Sprintf("/tags/list?n=%d", listPage), func(b []byte) (int, error) {
		var tl struct{ Tags []string }
		err := json.Unmarshal(b, &tl)
		return len(tl.Tags), err
	})
	if err != nil {
		return err
	}
	rp50, tp50 := percentile(refs, 50), percentile(tags, 50)
	rep.add("referrers_list_p50", "ms", rp50)
	rep.add("referrers_list_p99", "ms", percentile(refs, 99))
	rep.add("tags_list_p50", "ms", tp50)
	rep.add("tags_list_p99", "ms", percentile(tags, 99))
	if tp50 > 0 {
		rep.add("referrers_vs_tags_list_ratio", "ratio", rp50/tp50)
	}
	return nil
}

// pushAll calls push(i) for i in [0, n) on pushWorkers goroutines and
// returns the first error.
func pushAll(n int, push func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for w := range pushWorkers {
		wg.Go(func() {
			for i := w; i < n; i += pushWorkers {
				if err := push(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
