package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMedian3(t *testing.T) {
	tests := []struct {
		in             []float64
		med, low, high float64
	}{
		{nil, 0, 0, 0},
		{[]float64{5}, 5, 5, 5},
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{0.9, 1.1, 1.0, 50, 0.1}, 1.0, 0.1, 50},
	}
	for _, tt := range tests {
		med, lo, hi := median3(tt.in)
		if med != tt.med || lo != tt.low || hi != tt.high {
			t.Errorf("median3(%v) = %v, %v, %v; want %v, %v, %v", tt.in, med, lo, hi, tt.med, tt.low, tt.high)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		sorted []time.Duration
		p      float64
		want   float64
	}{
		{nil, 99, 0},
		{ms(7), 50, 7},
		{ms(1, 2, 3, 4), 50, 2},
		{ms(hundred...), 99, 99},
		{ms(hundred...), 100, 100},
		{ms(hundred...), 50, 50},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
		}
	}
}

func TestCeilingBody(t *testing.T) {
	for _, size := range []int{32, 100, 1234, maxCeilingBody} {
		b := ceilingBody(size)
		if len(b) != size {
			t.Errorf("ceilingBody(%d) has %d bytes", size, len(b))
		}
		var v map[string]string
		if err := json.Unmarshal(b, &v); err != nil || v["token"] == "" {
			t.Errorf("ceilingBody(%d) is not a JSON token reply: %v", size, err)
		}
	}
}

func TestReportRequiredAndLines(t *testing.T) {
	r := newReport(settingsFor(true, 3))
	for _, n := range requiredRatios {
		r.add(n, "ratio", 1)
		r.add(n, "ratio", 0.5)
		r.add(n, "ratio", 2)
	}
	if m := r.missing(); len(m) != 0 {
		t.Fatalf("missing %v", m)
	}
	var b strings.Builder
	r.print(&b)
	for _, n := range requiredRatios {
		if !strings.Contains(b.String(), "\nBENCH "+n+" 1.00 ratio\n") {
			t.Errorf("no BENCH line for %s in:\n%s", n, b.String())
		}
	}
	if m := newReport(settingsFor(true, 1)).missing(); len(m) != len(requiredRatios) {
		t.Errorf("an empty report misses %v", m)
	}
}
