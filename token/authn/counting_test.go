package authn

import (
	"bufio"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/metrics"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// stepAuth answers with a fixed error and a fixed duration on a fake clock.
type stepAuth struct{ err error }

func (s stepAuth) Authenticate(context.Context, Credentials) (access.Identity, error) {
	return access.Identity{Name: "x"}, s.err
}

func TestMetricsGolden(t *testing.T) {
	m := metrics.New("keystone", `v1.2.3 "dirty"`)
	for _, r := range metrics.RequestResults {
		m.Request(r)
	}
	m.Request("granted")
	m.Request("no such result") // counted as error
	tick := time.Unix(0, 0)
	for _, c := range []struct {
		err error
		d   time.Duration
	}{
		{nil, 3 * time.Millisecond},
		{nil, 200 * time.Millisecond},
		{ErrBadCredentials, 250 * time.Millisecond}, // on a bucket bound: le is inclusive
		{&RetryAfterError{After: time.Second}, 5 * time.Millisecond},
		{ErrUnavailable, 14 * time.Second}, // above every bucket: +Inf only
	} {
		cb := NewCountingBackend(stepAuth{c.err}, m)
		calls := 0
		cb.now = func() time.Time {
			calls++
			if calls == 1 {
				return tick
			}
			return tick.Add(c.d)
		}
		cb.Authenticate(context.Background(), Credentials{})
	}
	m.CacheHit()
	m.CacheHit()
	m.CacheMiss()
	m.CacheEntries(7)
	m.BackoffRejection()

	var sb strings.Builder
	w := bufio.NewWriter(&sb)
	m.WriteTo(w)
	w.Flush()
	golden := filepath.Join("testdata", "metrics.golden")
	if *updateGolden {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestMetricsGolden -update to create it)", err)
	}
	if sb.String() != string(want) {
		t.Errorf("metrics differ from %s (-update to accept):\n%s", golden, sb.String())
	}
}
