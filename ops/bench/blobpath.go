package main

// The data path against its ceiling: one large blob pushed and pulled with
// plain HTTP requests (no skopeo), the same cheap client for every target,
// through stx-registry, upstream's registry and the data ceiling
// (dataceiling.go). For each: MB/s and the server's CPU seconds per GiB,
// from /proc before and after the transfer.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"stx-registry/shared/testrig"
	"stx-registry/shared/tlsconf"
)

const (
	// blobTimeout bounds one push or pull of the blob: 512 MiB at a slow
	// 10 MB/s.
	blobTimeout = 3 * time.Minute
	// blobRepo is the repository the blob is pushed to.
	blobRepo = benchUser + "/blob"
	// blobClientBuffer is the client's socket buffer for each direction, so
	// that the client costs little and the same for every target.
	blobClientBuffer = 256 << 10
)

// blobBytes is the size of the blob: 512 MiB, 128 MiB in a quick run.
func blobBytes(s settings) int64 {
	if s.quick {
		return 128 << 20
	}
	return 512 << 20
}

// blobTarget is one server the blob goes to and comes back from.
type blobTarget struct {
	suffix string // of the metric names: "", "_upstream" or "_ceiling"
	addr   string
	proc   *proc
	// registry is set for the two registries: an upload is POST then PUT
	// with the digest, through a bearer token. The ceiling takes one PUT.
	registry bool
}

// benchBlob measures, per run on new storage, the push then the pull of
// one blob through each target, rotating which goes first.
func (w *workspace) benchBlob(ctx context.Context, s settings, rep *report) error {
	layer, err := testrig.RandomLayer(filepath.Join(w.dir, "image-blob"), blobBytes(s), testrig.Tar)
	if err != nil {
		return err
	}
	size := layer.Size // with the tar header
	file := filepath.Join(w.dir, "image-blob", "blobs", "sha256", layer.Digest[len("sha256:"):])
	defer os.RemoveAll(filepath.Join(w.dir, "image-blob"))
	c, err := w.blobClient()
	if err != nil {
		return err
	}
	ceilDir := filepath.Join(w.dir, "storage-ceiling")
	if err := os.Mkdir(ceilDir, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(ceilDir)
	ceilAddr, err := testrig.FreeAddr()
	if err != nil {
		return err
	}
	ceil, err := w.startDaemon(ctx, "data-ceiling", ceilAddr, filepath.Join(w.bin, "bench"), "dataceiling",
		"-cert", w.layout.ServerCert(), "-key", w.layout.ServerKey(), "-addr", ceilAddr, "-dir", ceilDir)
	if err != nil {
		return err
	}
	defer ceil.Stop()
	for run := range s.runs {
		w.log.Info("blob data path", "run", run+1, "bytes", size)
		regs, err := w.startRegistries(ctx, fmt.Sprint("blob-", run))
		if err != nil {
			return err
		}
		targets := []blobTarget{
			{"", w.registryAddr, regs.stx, true},
			{"_upstream", w.upstreamAddr, regs.upstream, true},
			{"_ceiling", ceilAddr, ceil, false},
		}
		for range run % len(targets) {
			targets = append(targets[1:], targets[0])
		}
		err = w.blobRun(ctx, rep, c, targets, file, layer.Digest, size)
		regs.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *workspace) blobRun(ctx context.Context, rep *report, c *http.Client, targets []blobTarget, file, digest string, size int64) error {
	gib := float64(size) / (1 << 30)
	for _, op := range []string{"push", "pull"} {
		rate, cpu := map[string]float64{}, map[string]float64{}
		for _, t := range targets {
			token := ""
			if t.registry {
				var err error
				if token, err = w.blobToken(ctx); err != nil {
					return err
				}
			}
			c0, err := t.proc.cpuSeconds()
			if err != nil {
				return err
			}
			t0 := time.Now()
			if op == "push" {
				err = blobPush(ctx, c, t, token, file, digest, size)
			} else {
				err = blobPull(ctx, c, t, token, digest, size)
			}
			d := time.Since(t0)
			if err != nil {
				return fmt.Errorf("%s %s: %w", op, t.addr, err)
			}
			c1, err := t.proc.cpuSeconds()
			if err != nil {
				return err
			}
			name := "blob_" + op + t.suffix
			rate[t.suffix], cpu[t.suffix] = mbps(size, d), (c1-c0)/gib
			rep.add(name+"_rate", "MB/s", rate[t.suffix])
			rep.add(name+"_cpu_per_gib", "s/GiB", cpu[t.suffix])
		}
		for _, ref := range []string{"ceiling", "upstream"} {
			rep.add("blob_"+op+"_vs_"+ref+"_rate_ratio", "ratio", rate[""]/rate["_"+ref])
			if cpu["_"+ref] > 0 {
				rep.add("blob_"+op+"_vs_"+ref+"_cpu_ratio", "ratio", cpu[""]/cpu["_"+ref])
			}
		}
	}
	return nil
}

// blobClient is an HTTPS client trusting only the demo CA, HTTP/1.1 with
// keep-alive, with large socket buffers and no overall timeout (each
// transfer has its own context).
func (w *workspace) blobClient() (*http.Client, error) {
	cfg, err := tlsconf.ClientConfig(w.layout.CAFile())
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: requestTimeout,
		WriteBufferSize:     blobClientBuffer,
		ReadBufferSize:      blobClientBuffer,
	}}, nil
}

// blobToken gets a push and pull token for blobRepo. Both registries share
// the token server and its service.
func (w *workspace) blobToken(ctx context.Context) (string, error) {
	c, err := w.client(false)
	if err != nil {
		return "", err
	}
	defer c.CloseIdleConnections()
	u := "https://" + w.tokenAddr + "/token/?service=" + url.QueryEscape(w.registryAddr) +
		"&scope=" + url.QueryEscape("repository:"+blobRepo+":pull,push")
	body, err := getToken(ctx, c, u, benchUser, w.password)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	tr, err := parseTokenReply(body)
	if err != nil {
		return "", err
	}
	return tr.Token, nil
}

// blobPush uploads file: to a registry as POST then one monolithic PUT
// with the digest, to the ceiling as one PUT. Either must answer 201 with
// the digest.
func blobPush(ctx context.Context, c *http.Client, t blobTarget, token, file, digest string, size int64) error {
	ctx, cancel := context.WithTimeout(ctx, blobTimeout)
	defer cancel()
	u := "https://" + t.addr + dataCeilingPath
	if t.registry {
		resp, err := blobDo(ctx, c, http.MethodPost, "https://"+t.addr+"/v2/"+blobRepo+"/blobs/uploads/", token, nil, 0, http.StatusAccepted)
		if err != nil {
			return err
		}
		loc, err := resp.Location()
		if err != nil {
			return fmt.Errorf("upload without a location: %w", err)
		}
		q := loc.Query()
		q.Set("digest", digest)
		loc.RawQuery = q.Encode()
		u = loc.String()
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	resp, err := blobDo(ctx, c, http.MethodPut, u, token, f, size, http.StatusCreated)
	if err != nil {
		return err
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != digest {
		return fmt.Errorf("stored with digest %q, want %s", got, digest)
	}
	return nil
}

// blobPull downloads the blob into io.Discard and checks its size; the
// digest was checked by the server on the way in.
func blobPull(ctx context.Context, c *http.Client, t blobTarget, token, digest string, size int64) error {
	ctx, cancel := context.WithTimeout(ctx, blobTimeout)
	defer cancel()
	u := "https://" + t.addr + dataCeilingPath
	if t.registry {
		u = "https://" + t.addr + "/v2/" + blobRepo + "/blobs/" + digest
	}
	req, err := blobRequest(ctx, http.MethodGet, u, token, nil, 0)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET: status %d", resp.StatusCode)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("GET: %d bytes, want %d", n, size)
	}
	return nil
}

// blobDo sends a request whose answer has no body worth reading and checks
// its status.
func blobDo(ctx context.Context, c *http.Client, method, u, token string, body io.Reader, size int64, want int) (*http.Response, error) {
	req, err := blobRequest(ctx, method, u, token, body, size)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxReplyBytes))
	resp.Body.Close()
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d", method, req.URL.Path, resp.StatusCode, want)
	}
	return resp, nil
}

func blobRequest(ctx context.Context, method, u, token string, body io.Reader, size int64) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

// parseTokenReply is the token of a token server's reply.
func parseTokenReply(body []byte) (tokenReply, error) {
	var tr tokenReply
	if err := json.Unmarshal(body, &tr); err != nil || tr.Token == "" {
		return tr, errors.Join(errors.New("token reply without a token"), err)
	}
	return tr, nil
}

// blobSetup describes the blob measurement for BENCHMARKS.md.
func blobSetup(s settings) string {
	quick := ""
	if s.quick {
		quick = " (quick run: a smaller blob)"
	}
	return fmt.Sprintf("blob data path: one blob of %d MiB%s of random data, pushed (registries: POST, then one monolithic PUT with the digest) and pulled (GET into nothing, size checked) by one HTTP/1.1 client in this tool, the same for every target; each run on new storage roots, rotating which target goes first; CPU is the server's utime+stime from /proc around each transfer. The data ceiling is a process of this tool on the same shared/serve server, shared/tlsconf configuration and certificate that writes a PUT body to a new file on the same file system while hashing it with SHA-256, fsyncs and renames it, and streams that file back for a GET", blobBytes(s)>>20, quick)
}

// blobDescribe says what a blob metric is, for BENCHMARKS.md.
func blobDescribe(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "blob_")
	if !ok {
		return "", false
	}
	op, rest, _ := strings.Cut(rest, "_")
	if base, ok := strings.CutSuffix(rest, "_ratio"); ok {
		ref, what, _ := strings.Cut(strings.TrimPrefix(base, "vs_"), "_")
		if what == "cpu" {
			return fmt.Sprintf("stx-registry %s CPU per GiB over %s's", op, ref), true
		}
		return fmt.Sprintf("stx-registry %s MB/s over %s's", op, ref), true
	}
	who := "stx-registry"
	for _, t := range []string{"upstream", "ceiling"} {
		if r, ok := strings.CutPrefix(rest, t+"_"); ok {
			who, rest = t, r
		}
	}
	if who == "ceiling" {
		who = "data ceiling"
	}
	if rest == "cpu_per_gib" {
		return fmt.Sprintf("%s CPU seconds per GiB, blob %s", who, op), true
	}
	return fmt.Sprintf("%s blob %s", who, op), true
}
