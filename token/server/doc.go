// Package server owns the token server's HTTP handler: the token endpoint
// (GET with Basic auth, the OAuth2 POST form with the password and refresh
// grants), /healthz, /readyz and /metrics, the audit line of every token
// request, and the signing key reload on SIGHUP. It knows nothing of TLS or
// listening.
package server
