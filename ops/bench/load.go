package main

// A closed-loop load generator: a fixed number of workers, each sending its
// next request as soon as the last one is answered.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// requestTimeout bounds one token request (docker's own is 15 s).
	requestTimeout = 10 * time.Second
	// maxClients bounds the idle connections a client keeps per host: the
	// largest crowd is the 500 parallel token requests.
	maxClients = 512
	// pullTimeout bounds one whole image pull of the parallel pulls.
	pullTimeout = 5 * time.Minute
)

// loadResult is what one load measured.
type loadResult struct {
	ok, failed int
	firstErr   error
	elapsed    time.Duration
	latencies  []time.Duration // of the successful requests, sorted
}

// rate is successful requests per second.
func (r loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// percentile is the p-th percentile (0 < p ≤ 100) of the sorted
// latencies, by the nearest-rank method, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	rank = min(max(rank, 0), len(sorted)-1)
	return float64(sorted[rank]) / float64(time.Millisecond)
}

// runLoad has workers call do until count calls have been made or limit
// has passed, whichever comes first.
func runLoad(ctx context.Context, workers, count int, limit time.Duration, do func(context.Context) error) loadResult {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var (
		next   atomic.Int64
		mu     sync.Mutex
		res    loadResult
		wg     sync.WaitGroup
		failed atomic.Int64
	)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			var lat []time.Duration
			var firstErr error
			for next.Add(1) <= int64(count) && ctx.Err() == nil {
				t0 := time.Now()
				if err := do(ctx); err != nil {
					if ctx.Err() != nil {
						break // cut by the time limit: not a failure
					}
					failed.Add(1)
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ok, res.failed = len(res.latencies), int(failed.Load())
	slices.Sort(res.latencies)
	return res
}

// burst starts n calls of do at once (after all n goroutines are ready)
// and waits for all of them.
func burst(ctx context.Context, n int, do func(context.Context) error) loadResult {
	var (
		ready, wg sync.WaitGroup
		gate      = make(chan struct{})
		mu        sync.Mutex
		res       loadResult
	)
	ready.Add(n)
	for range n {
		wg.Go(func() {
			ready.Done()
			<-gate
			t0 := time.Now()
			err := do(ctx)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.failed++
				if res.firstErr == nil {
					res.firstErr = err
				}
				return
			}
			res.latencies = append(res.latencies, d)
		})
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ok = len(res.latencies)
	slices.Sort(res.latencies)
	return res
}

// check turns a load with failures into an error naming the first one.
func (r loadResult) check(what string) error {
	if r.failed > 0 {
		return fmt.Errorf("%s: %d of %d requests failed, the first: %w", what, r.failed, r.ok+r.failed, r.firstErr)
	}
	if r.ok == 0 {
		return fmt.Errorf("%s: no request completed", what)
	}
	return nil
}
