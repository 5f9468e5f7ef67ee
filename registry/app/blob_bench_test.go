package app

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"stx-registry/registry/tokenauth/tokentest"
)

// benchBlobBytes is the blob BenchmarkBlob pushes and pulls.
const benchBlobBytes = 64 << 20

// BenchmarkBlob pushes (POST, then one monolithic PUT) and pulls one blob
// through the whole handler chain over TLS on loopback, client and server
// in this process, as make bench does against the daemon. Profile either
// direction with
//
//	go test -run '^$' -bench 'Blob/pull' -cpuprofile cpu.out ./registry/app
//	go tool pprof -top -cum app.test cpu.out
func BenchmarkBlob(b *testing.B) {
	data := make([]byte, benchBlobBytes)
	rand.Read(data)
	r := serveTestRegistry(b, tokentest.NewKey(b, "P-256"), false, (*httptest.Server).StartTLS)
	tok := r.token("alice", tokentest.Repo("alice/blob", "pull", "push"))
	b.Run("push", func(b *testing.B) {
		b.SetBytes(benchBlobBytes)
		for b.Loop() {
			r.pushBlob("alice/blob", tok, data)
		}
	})
	dgst := r.pushBlob("alice/blob", tok, data)
	b.Run("pull", func(b *testing.B) {
		b.SetBytes(benchBlobBytes)
		for b.Loop() {
			req, err := http.NewRequest(http.MethodGet, r.srv.URL+"/v2/alice/blob/blobs/"+dgst, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := r.srv.Client().Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || n != benchBlobBytes {
				b.Fatalf("pull: %d bytes, %v", n, err)
			}
		}
	})
}
