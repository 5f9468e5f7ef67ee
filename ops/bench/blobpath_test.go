package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"stx-registry/shared/testrig"
)

func TestBlobDescribe(t *testing.T) {
	tests := []struct{ name, want string }{
		{"blob_push_rate", "stx-registry, blob push, HTTP/1.1"},
		{"blob_pull_h2_upstream_cpu_per_gib", "upstream CPU seconds per GiB, blob pull, HTTP/2"},
		{"blob_push_ceiling_rate", "data ceiling, blob push, HTTP/1.1"},
		{"blob_pull_vs_ceiling_cpu_ratio", "stx-registry over ceiling, CPU per GiB, blob pull, HTTP/1.1"},
		{"blob_push_h2_vs_upstream_rate_ratio", "stx-registry over upstream, MB/s, blob push, HTTP/2"},
	}
	for _, tt := range tests {
		if got, ok := blobDescribe(tt.name); !ok || got != tt.want {
			t.Errorf("blobDescribe(%q) = %q, %v; want %q", tt.name, got, ok, tt.want)
		}
		if got := describe(tt.name); got != tt.want {
			t.Errorf("describe(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	if _, ok := blobDescribe("push_rate"); ok {
		t.Error("blobDescribe claims push_rate")
	}
}

// TestDataCeiling stores a blob with a PUT and reads it back with a GET.
func TestDataCeiling(t *testing.T) {
	srv := httptest.NewServer(dataCeiling{dir: t.TempDir()})
	defer srv.Close()
	data := bytes.Repeat([]byte("stx"), 100000)
	req, err := http.NewRequest(http.MethodPut, srv.URL+dataCeilingPath, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != want {
		t.Fatalf("PUT: status %d, digest %q; want 201, %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), want)
	}
	resp, err = srv.Client().Get(srv.URL + dataCeilingPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("GET: status %d, %d bytes, %v; want 200 and the %d bytes put", resp.StatusCode, len(got), err, len(data))
	}
	resp, err = srv.Client().Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: status %d, want 404", resp.StatusCode)
	}
}

// TestCPUClock compares the CPU clock with /proc/PID/stat for a process
// that burns CPU.
func TestCPUClock(t *testing.T) {
	tp, err := testrig.Start(testrig.Cmd{Argv: []string{"sh", "-c", "while :; do :; done"}, Log: filepath.Join(t.TempDir(), "log")})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Stop()
	p := &proc{name: "sh", Proc: tp}
	time.Sleep(300 * time.Millisecond)
	clock, err := p.cpuClockSeconds()
	if err != nil {
		t.Fatal(err)
	}
	stat, err := p.cpuSeconds()
	if err != nil {
		t.Fatal(err)
	}
	if clock <= 0 || clock < stat-0.05 || clock > stat+0.05 {
		t.Errorf("CPU clock %.3f s, /proc/PID/stat %.3f s", clock, stat)
	}
}
