package reserve

import (
	"fmt"
	"strconv"
	"strings"
)

// Default reserve: DefaultPercent of the filesystem, at least DefaultFloor,
// but never more than maxDefaultShare of it, so that a small filesystem
// still takes pushes.
const (
	DefaultPercent  = 5
	DefaultFloor    = 1 << 30 // 1 GiB: one platform image's largest layers
	maxDefaultShare = 2       // the floor is capped at 1/2 of the filesystem
)

// Size is the value of storage_reserve: a percentage of the filesystem or
// a number of bytes. The zero value is the default.
type Size struct {
	Percent int   // 1..90 when set as "N%"
	Bytes   int64 // when set as a size
	Set     bool  // false: the default
}

// units are the suffixes storage_reserve accepts, binary like df -h.
var units = map[string]int64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

// maxPercent keeps a reserve from taking the whole filesystem.
const maxPercent = 90

// Parse reads "N%" (1 to 90) or "N" with an optional K, M, G or T suffix;
// "0" turns the reserve off.
func Parse(v string) (Size, error) {
	if n, ok := strings.CutSuffix(v, "%"); ok {
		p, err := strconv.Atoi(n)
		if err != nil || p < 1 || p > maxPercent {
			return Size{}, fmt.Errorf("%q is not a percentage from 1%% to %d%%", v, maxPercent)
		}
		return Size{Percent: p, Set: true}, nil
	}
	num, unit := v, ""
	if i := len(v) - 1; i > 0 && strings.ContainsAny(v[i:], "KMGT") {
		num, unit = v[:i], v[i:]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/units[unit] {
		return Size{}, fmt.Errorf("%q is not a size like 5%%, 512M or 2G", v)
	}
	return Size{Bytes: n * units[unit], Set: true}, nil
}

// For returns the reserve in bytes for a filesystem of total bytes.
func (s Size) For(total uint64) uint64 {
	switch {
	case s.Percent > 0:
		return total / 100 * uint64(s.Percent)
	case s.Set:
		return uint64(s.Bytes)
	}
	r := max(total/100*DefaultPercent, DefaultFloor)
	return min(r, total/maxDefaultShare)
}

// String is the value as written in the configuration.
func (s Size) String() string {
	switch {
	case s.Percent > 0:
		return strconv.Itoa(s.Percent) + "%"
	case s.Set:
		return strconv.FormatInt(s.Bytes, 10)
	}
	return "default"
}
