// Package server owns the token server's HTTP handler: the token endpoint
// (GET with Basic auth, the OAuth2 POST form with the password and refresh
// grants), /healthz, /readyz and /metrics, the audit line of every token
// request, the signing key reload on SIGHUP, and when a kept token is
// reused (token/reuse) or dropped. It knows nothing of TLS or
// listening.
package server
