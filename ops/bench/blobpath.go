package main

// The data path against its ceiling: one large blob pushed and pulled with
// plain HTTP requests (no skopeo), the same cheap client for every target,
// through stx-registry, upstream's registry and the data ceiling
// (dataceiling.go). For each: MB/s and the server's CPU seconds per GiB,
// read from its CPU-time clock before and after the transfer.

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
	"syscall"
	"time"
	"unsafe"

	"stx-registry/shared/testrig"
	"stx-registry/shared/tlsconf"
)

const (
	// blobTimeout bounds one push or pull of the blob: 512 MiB at a slow
	// 10 MB/s.
	blobTimeout = 3 * time.Minute
	// blobRepo is the repository the blob is pushed to.
	blobRepo = benchUser + "/blob"
	// blobClientBuffer is the client's HTTP/1.1 read and write buffer and
	// the piece a pull reads the body in, so that the client costs little
	// and the same for every target.
	blobClientBuffer = 256 << 10
)

// blobBytes is the size of the blob: 512 MiB, 64 MiB in a quick run
// (the CPU clock is precise enough for it).
func blobBytes(s settings) int64 {
	if s.quick {
		return 64 << 20
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

// blobProtocols are the HTTP versions the blob travels over: HTTP/1.1, and
// HTTP/2, which curl and Go clients that enable it negotiate. All three
// servers offer both.
var blobProtocols = []struct {
	suffix string // of the metric names, after the operation
	major  int    // the ProtoMajor every answer must have
}{{"", 1}, {"_h2", 2}}

// benchBlob measures, per run and protocol on new storage, the push then
// the pull of one blob through each target, rotating which goes first.
func (w *workspace) benchBlob(ctx context.Context, s settings, rep *report) error {
	layer, err := testrig.RandomLayer(filepath.Join(w.dir, "image-blob"), blobBytes(s), testrig.Tar)
	if err != nil {
		return err
	}
	size := layer.Size // with the tar header
	file := filepath.Join(w.dir, "image-blob", "blobs", "sha256", layer.Digest[len("sha256:"):])
	defer os.RemoveAll(filepath.Join(w.dir, "image-blob"))
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
		for _, p := range blobProtocols {
			w.log.Info("blob data path", "run", run+1, "http", p.major, "bytes", size)
			c, err := w.blobClient(p.major)
			if err != nil {
				return err
			}
			regs, err := w.startRegistries(ctx, fmt.Sprintf("blob-%d-%d", run, p.major))
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
			err = os.Remove(filepath.Join(ceilDir, "blob"))
			if err == nil || errors.Is(err, os.ErrNotExist) {
				err = w.blobRun(ctx, rep, c, p.suffix, targets, file, layer.Digest, size)
			}
			regs.stop()
			c.CloseIdleConnections()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *workspace) blobRun(ctx context.Context, rep *report, c *blobClient, proto string, targets []blobTarget, file, digest string, size int64) error {
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
			c0, err := t.proc.cpuClockSeconds()
			if err != nil {
				return err
			}
			t0 := time.Now()
			if op == "push" {
				err = c.push(ctx, t, token, file, digest, size)
			} else {
				err = c.pull(ctx, t, token, digest, size)
			}
			d := time.Since(t0)
			if err != nil {
				return fmt.Errorf("%s %s: %w", op, t.addr, err)
			}
			c1, err := t.proc.cpuClockSeconds()
			if err != nil {
				return err
			}
			name := "blob_" + op + proto + t.suffix
			rate[t.suffix], cpu[t.suffix] = mbps(size, d), (c1-c0)/gib
			rep.add(name+"_rate", "MB/s", rate[t.suffix])
			rep.add(name+"_cpu_per_gib", "s/GiB", cpu[t.suffix])
		}
		for _, ref := range []string{"ceiling", "upstream"} {
			rep.add("blob_"+op+proto+"_vs_"+ref+"_rate_ratio", "ratio", rate[""]/rate["_"+ref])
			if cpu["_"+ref] > 0 {
				rep.add("blob_"+op+proto+"_vs_"+ref+"_cpu_ratio", "ratio", cpu[""]/cpu["_"+ref])
			}
		}
	}
	return nil
}

// blobClient is an HTTPS client trusting only the demo CA, with keep-alive,
// large socket buffers and no overall timeout (each transfer has its own
// context), that speaks one HTTP version only.
type blobClient struct {
	*http.Client
	major int // the ProtoMajor every answer must have
}

func (w *workspace) blobClient(major int) (*blobClient, error) {
	cfg, err := tlsconf.ClientConfig(w.layout.CAFile())
	if err != nil {
		return nil, err
	}
	// With its own TLSClientConfig a Transport speaks HTTP/1.1 unless told
	// to try HTTP/2.
	return &blobClient{major: major, Client: &http.Client{Transport: &http.Transport{
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: requestTimeout,
		WriteBufferSize:     blobClientBuffer,
		ReadBufferSize:      blobClientBuffer,
		ForceAttemptHTTP2:   major == 2,
	}}}, nil
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

// push uploads file: to a registry as POST then one monolithic PUT
// with the digest, to the ceiling as one PUT. Either must answer 201 with
// the digest.
func (c *blobClient) push(ctx context.Context, t blobTarget, token, file, digest string, size int64) error {
	ctx, cancel := context.WithTimeout(ctx, blobTimeout)
	defer cancel()
	u := "https://" + t.addr + dataCeilingPath
	if t.registry {
		resp, err := c.do(ctx, http.MethodPost, "https://"+t.addr+"/v2/"+blobRepo+"/blobs/uploads/", token, nil, 0, http.StatusAccepted)
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
	resp, err := c.do(ctx, http.MethodPut, u, token, f, size, http.StatusCreated)
	if err != nil {
		return err
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != digest {
		return fmt.Errorf("stored with digest %q, want %s", got, digest)
	}
	return nil
}

// pull downloads the blob into nothing, blobClientBuffer at a time, and
// checks its size; the digest was checked by the server on the way in.
// The piece is a client's, not io.Discard's 8 KiB: over HTTP/2 every read
// of 4 KiB or more sends the server a WINDOW_UPDATE frame, and handling
// those took a fifth of each server's CPU on a pull. A client that stores
// the blob reads in large pieces (containerd copies 1 MiB at a time).
func (c *blobClient) pull(ctx context.Context, t blobTarget, token, digest string, size int64) error {
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
	if resp.ProtoMajor != c.major {
		return fmt.Errorf("GET: answered over %s, want HTTP/%d", resp.Proto, c.major)
	}
	// Without its ReadFrom, io.Discard gets the pieces CopyBuffer reads.
	n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, resp.Body, make([]byte, blobClientBuffer))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("GET: %d bytes, want %d", n, size)
	}
	return nil
}

// do sends a request whose answer has no body worth reading and checks
// its status and protocol.
func (c *blobClient) do(ctx context.Context, method, u, token string, body io.Reader, size int64, want int) (*http.Response, error) {
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
	if resp.ProtoMajor != c.major {
		return nil, fmt.Errorf("%s %s: answered over %s, want HTTP/%d", method, req.URL.Path, resp.Proto, c.major)
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
	if err := json.Unmarshal(body, &tr); err != nil {
		return tr, fmt.Errorf("token reply: %w", err)
	}
	if tr.Token == "" {
		return tr, errors.New("token reply without a token")
	}
	return tr, nil
}

// blobSetup describes the blob measurement for BENCHMARKS.md.
func blobSetup(s settings) string {
	quick := ""
	if s.quick {
		quick = " (quick run: a smaller blob)"
	}
	return fmt.Sprintf("blob data path: one blob of %d MiB%s of random data, pushed (registries: POST, then one monolithic PUT with the digest) and pulled (GET, read in 256 KiB pieces into nothing, size checked) by a client in this tool, the same for every target, over HTTP/1.1 and again over HTTP/2 (names with _h2); each run and protocol on new storage roots, rotating which target goes first; CPU is the server process's user plus system time around each transfer, read from its CPU-time clock (clock_gettime with the PID's clock: nanoseconds, where /proc counts 10 ms ticks). The data ceiling is a process of this tool on the same shared/serve server, shared/tlsconf configuration and certificate that writes a PUT body to a new file on the same file system while hashing it with SHA-256, fsyncs and renames it, and streams that file back for a GET", blobBytes(s)>>20, quick)
}

// blobDescribe says what a blob metric is, for BENCHMARKS.md.
func blobDescribe(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "blob_")
	if !ok {
		return "", false
	}
	op, rest, _ := strings.Cut(rest, "_")
	proto := "HTTP/1.1"
	if r, ok := strings.CutPrefix(rest, "h2_"); ok {
		proto, rest = "HTTP/2", r
	}
	if base, ok := strings.CutSuffix(rest, "_ratio"); ok {
		ref, what, _ := strings.Cut(strings.TrimPrefix(base, "vs_"), "_")
		if what == "cpu" {
			return fmt.Sprintf("stx-registry over %s, CPU per GiB, blob %s, %s", ref, op, proto), true
		}
		return fmt.Sprintf("stx-registry over %s, MB/s, blob %s, %s", ref, op, proto), true
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
		return fmt.Sprintf("%s CPU seconds per GiB, blob %s, %s", who, op, proto), true
	}
	return fmt.Sprintf("%s, blob %s, %s", who, op, proto), true
}

// cpuClockSeconds is the process's CPU time so far (user plus system, all
// threads, the exited ones too) in nanoseconds' precision, read from its
// CPU-time clock: clock_gettime(2) with the clock ID of the PID, which
// Linux gives any process (see clock_getcpuclockid(3)). /proc/PID/stat
// counts in 10 ms ticks, too coarse for one transfer of a small blob.
func (p *proc) cpuClockSeconds() (float64, error) {
	// The kernel's MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED).
	const cpuClockSched = 2
	clock := int64(^p.PID())<<3 | cpuClockSched
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, uintptr(clock), uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, fmt.Errorf("%s: CPU clock of PID %d: %w", p.name, p.PID(), errno)
	}
	return float64(ts.Nano()) / 1e9, nil
}
