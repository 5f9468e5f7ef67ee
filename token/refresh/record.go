package refresh

// The state file's lines. The first is a header with the format version;
// each other line is one record, appended in order:
//
//	{"hash":H,"sub":…,"uid":…,"client":…,"admin":…,"service":…,"created":…,"expires":…,"checked":…}  a token was issued
//	{"touch":H,"checked":T}  its user was re-checked at T
//	{"revoke":H}             it was revoked, or dropped beyond a limit
//
// H is the base64url SHA-256 of the token, times are Unix seconds. Version
// 1 files (before the log) hold issue records only; they are read as they
// are and rewritten as version 2 before the first append.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"stx-registry/token/access"
)

const (
	// maxRefreshLineBytes bounds one line of the state file: a 43-byte
	// hash, 255-byte subject, service and client_id, a 64-byte user ID and
	// the JSON around them fit, with room for JSON's \u escapes of a few
	// characters. Issue refuses an entry whose line would be longer.
	maxRefreshLineBytes = 2048
	// maxUserIDBytes bounds a backend's user ID (Keystone's are 32 hex
	// digits).
	maxUserIDBytes = 64
	// maxClientIDBytes bounds a client_id, as the server does.
	maxClientIDBytes = 255
)

// refreshHeader is the first line of the state file, with its format
// version; refreshHeaderV1 is read too. Another header is reported like a
// damaged file.
const (
	refreshHeader   = `{"stx-token-server-refresh-tokens":2}`
	refreshHeaderV1 = `{"stx-token-server-refresh-tokens":1}`
)

// refreshLine is an issue record. Times are Unix seconds.
type refreshLine struct {
	Hash    string `json:"hash"` // base64url SHA-256 of the token
	Subject string `json:"sub"`
	UserID  string `json:"uid,omitempty"`
	Client  string `json:"client,omitempty"`
	Admin   bool   `json:"admin"`
	Service string `json:"service"`
	Created int64  `json:"created"`
	Expires int64  `json:"expires"`
	Checked int64  `json:"checked"`
}

// touchLine and revokeLine are the other records.
type touchLine struct {
	Touch   string `json:"touch"`
	Checked int64  `json:"checked"`
}

type revokeLine struct {
	Revoke string `json:"revoke"`
}

// record is one parsed line: exactly one of issue, touch and revoke says
// what it is.
type record struct {
	issue   *refreshLine
	hash    [sha256.Size]byte // of every kind
	checked int64             // touch only
	revoke  bool
}

// ParseLine parses one line of the state file, refusing anything the
// server would not have written. The kind is told by the line's first key,
// as the server writes it.
func ParseLine(line []byte) (record, error) {
	var r record
	if len(line) > maxRefreshLineBytes {
		return r, fmt.Errorf("line longer than %d bytes", maxRefreshLineBytes)
	}
	var err error
	switch {
	case bytes.HasPrefix(line, []byte(`{"touch":`)):
		var t touchLine
		if err := strictDecode(line, &t); err != nil {
			return r, err
		}
		if t.Checked <= 0 {
			return r, errors.New("touch without a time")
		}
		r.hash, err = parseHash(t.Touch)
		r.checked = t.Checked
	case bytes.HasPrefix(line, []byte(`{"revoke":`)):
		var v revokeLine
		if err := strictDecode(line, &v); err != nil {
			return r, err
		}
		r.hash, err = parseHash(v.Revoke)
		r.revoke = true
	default:
		var l refreshLine
		if err := strictDecode(line, &l); err != nil {
			return r, err
		}
		if err := l.check(); err != nil {
			return r, err
		}
		r.hash, err = parseHash(l.Hash)
		r.issue = &l
	}
	return r, err
}

// strictDecode decodes one JSON object with no unknown field and nothing
// after it.
func strictDecode(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not a refresh token record: %w", err)
	}
	if dec.More() {
		return errors.New("trailing data after the record")
	}
	return nil
}

func parseHash(s string) (h [sha256.Size]byte, err error) {
	b, err := b64.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return h, errors.New("hash is not a base64url SHA-256")
	}
	copy(h[:], b)
	return h, nil
}

// check refuses an issue record the server would not have written.
func (l refreshLine) check() error {
	switch {
	case !printable(l.Subject, access.MaxUsernameBytes):
		return errors.New("bad subject")
	case !printable(l.Service, access.MaxServiceBytes):
		return errors.New("bad service")
	case l.UserID != "" && !printable(l.UserID, maxUserIDBytes):
		return errors.New("bad user id")
	case l.Client != "" && !printable(l.Client, maxClientIDBytes):
		return errors.New("bad client_id")
	case l.Created <= 0 || l.Expires < l.Created || l.Checked < l.Created:
		return errors.New("times out of order")
	}
	return nil
}

// printable reports whether s is 1 to max bytes without control characters.
func printable(s string, max int) bool {
	return s != "" && len(s) <= max && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// encode is r's line, without the newline.
func (r record) encode() []byte {
	var v any
	switch {
	case r.issue != nil:
		v = r.issue
	case r.revoke:
		v = revokeLine{Revoke: b64.EncodeToString(r.hash[:])}
	default:
		v = touchLine{Touch: b64.EncodeToString(r.hash[:]), Checked: r.checked}
	}
	b, _ := json.Marshal(v) // strings and numbers only: cannot fail
	return b
}
