package server

// The token reply, the one body on the hot path of every grant, encoded
// without reflection. encoding/json stays the reference: the fuzz test
// FuzzTokenReplyJSON holds appendJSON to its output byte for byte.

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// writeToken sends r as the 200 reply of a grant, with writeJSON's headers.
func writeToken(w http.ResponseWriter, r *tokenResponse) {
	setJSONHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	// The field names and numbers take under 128 bytes; the strings are
	// longer only when escaped, and append then grows the buffer.
	n := len(r.Token) + len(r.AccessToken) + len(r.IssuedAt) + len(r.Scope) + len(r.RefreshToken) + 128
	w.Write(r.appendJSON(make([]byte, 0, n)))
}

// appendJSON appends r to b exactly as json.NewEncoder(w).Encode(r)
// writes it: fields in declaration order, omitempty fields left out when
// empty, a newline at the end.
func (r *tokenResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"token":`...)
	start := len(b)
	b = appendJSONString(b, r.Token)
	end := len(b)
	b = append(b, `,"access_token":`...)
	if r.AccessToken == r.Token { // always: the same token under both names, encoded once
		b = append(b, b[start:end]...)
	} else {
		b = appendJSONString(b, r.AccessToken)
	}
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, int64(r.ExpiresIn), 10)
	b = append(b, `,"issued_at":`...)
	b = appendJSONString(b, r.IssuedAt)
	if r.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, r.Scope)
	}
	if r.RefreshToken != "" {
		b = append(b, `,"refresh_token":`...)
		b = appendJSONString(b, r.RefreshToken)
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string. A token, a refresh token or
// a timestamp is printable ASCII that encoding/json leaves as it is and is
// copied between quotes; anything else (a scope may hold any name the
// policy granted) goes through json.Marshal, escaping and all.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSON[s[i]] {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainJSON holds the bytes encoding/json writes as they are in a string:
// printable ASCII but for the quote, the backslash and its HTML escapes.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()
