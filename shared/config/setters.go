package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// String stores a non-empty value without control characters in dst.
func String(dst *string) func(string) error {
	return func(v string) error {
		if err := checkText(v); err != nil {
			return err
		}
		*dst = v
		return nil
	}
}

// Strings appends each value to dst, checked as by String. Use it with
// Keyword.Repeat.
func Strings(dst *[]string) func(string) error {
	return func(v string) error {
		if err := checkText(v); err != nil {
			return err
		}
		*dst = append(*dst, v)
		return nil
	}
}

// Bool stores "yes" as true and "no" as false; nothing else is accepted.
func Bool(dst *bool) func(string) error {
	return func(v string) error {
		switch v {
		case "yes":
			*dst = true
		case "no":
			*dst = false
		default:
			return fmt.Errorf("%s is not yes or no", quote(v))
		}
		return nil
	}
}

// Duration stores a time.ParseDuration value such as "30s" or "12h" that lies
// within [min, max].
func Duration(dst *time.Duration, min, max time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s is not a duration like 30s, 5m or 12h", quote(v))
		}
		if d < min || d > max {
			return fmt.Errorf("%s is out of range, give %v to %v", v, min, max)
		}
		*dst = d
		return nil
	}
}

// Int stores a decimal integer within [min, max].
func Int(dst *int, min, max int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s is not a decimal integer", quote(v))
		}
		if n < min || n > max {
			return fmt.Errorf("%d is out of range, give %d to %d", n, min, max)
		}
		*dst = n
		return nil
	}
}

// Path stores an absolute path that is already in filepath.Clean form, so
// that what the operator wrote is exactly what is opened.
func Path(dst *string) func(string) error {
	return func(v string) error {
		if err := checkText(v); err != nil {
			return err
		}
		if !filepath.IsAbs(v) {
			return fmt.Errorf("%s is not an absolute path", quote(v))
		}
		if c := filepath.Clean(v); c != v {
			return fmt.Errorf("%s is not a clean path, write %s", quote(v), quote(c))
		}
		*dst = v
		return nil
	}
}

// Prefixes appends a network in CIDR form, such as 192.168.204.0/24 or
// fd00::/64, to dst. Host bits must be zero. Use it with Keyword.Repeat.
func Prefixes(dst *[]netip.Prefix) func(string) error {
	return func(v string) error {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return fmt.Errorf("%s is not a network like 192.168.204.0/24", quote(v))
		}
		if m := p.Masked(); m != p {
			return fmt.Errorf("%s has host bits set, write %s", v, m)
		}
		*dst = append(*dst, p)
		return nil
	}
}

// OneOf stores a value that is exactly one of allowed.
func OneOf(dst *string, allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				*dst = v
				return nil
			}
		}
		return fmt.Errorf("%s is not one of %s", quote(v), strings.Join(allowed, ", "))
	}
}

// checkText refuses an empty value or one holding control characters.
func checkText(v string) error {
	if v == "" {
		return errors.New("value is empty")
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return errors.New("value contains a control character")
	}
	return nil
}
