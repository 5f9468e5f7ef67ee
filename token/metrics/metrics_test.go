package metrics

import "testing"

func TestRequestResult(t *testing.T) {
	tests := []struct {
		status  int
		partial bool
		want    string
	}{
		{200, false, "granted"}, {200, true, "denied"}, {400, false, "bad_request"},
		{405, false, "bad_request"}, {413, false, "bad_request"}, {401, false, "unauthorized"},
		{429, false, "rate_limited"}, {503, false, "unavailable"}, {500, false, "error"},
	}
	for _, tt := range tests {
		if got := RequestResult(tt.status, tt.partial); got != tt.want {
			t.Errorf("RequestResult(%d, %v) = %s, want %s", tt.status, tt.partial, got, tt.want)
		}
	}
	var nilMetrics *Metrics // every recording method is safe on nil
	nilMetrics.Request("granted")
	nilMetrics.BackendCall("unavailable", 0)
	nilMetrics.CacheHit()
	nilMetrics.CacheMiss()
	nilMetrics.CacheEntries(1)
	nilMetrics.BackoffRejection()
}
