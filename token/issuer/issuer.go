package issuer

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"stx-registry/shared/jws"
	"stx-registry/token/access"
)

const (
	// MinTokenTTL is the shortest token lifetime: clients treat anything
	// shorter as 60 s anyway.
	MinTokenTTL = 60 * time.Second
	// DefaultTokenTTL is long enough for a pull of many layers.
	DefaultTokenTTL = 5 * time.Minute
	// MaxTokenTTL bounds how long a leaked bearer token stays useful.
	MaxTokenTTL = time.Hour
	// maxIssuerBytes bounds the issuer name.
	maxIssuerBytes = 255
	// jtiBytes of crypto/rand make each token's ID unique.
	jtiBytes = 16
)

var b64 = base64.RawURLEncoding

// Issuer signs access tokens. It owns the signing keys: the first signs,
// all are kept so that they can be published during key rotation.
type Issuer struct {
	name   string
	ttl    time.Duration
	signer *jws.Signer // keys[0]
	keys   []crypto.Signer
}

// New returns an Issuer naming itself name in "iss", issuing tokens
// valid for ttl and signing with keys[0].
func New(name string, ttl time.Duration, keys ...crypto.Signer) (*Issuer, error) {
	if name == "" || len(name) > maxIssuerBytes {
		return nil, fmt.Errorf("issuer name must be 1 to %d bytes", maxIssuerBytes)
	}
	if ttl < MinTokenTTL || ttl > MaxTokenTTL {
		return nil, fmt.Errorf("token ttl %s is out of range, use %s to %s", ttl, MinTokenTTL, MaxTokenTTL)
	}
	if len(keys) == 0 {
		return nil, errors.New("no signing key, give at least one")
	}
	for n, k := range keys {
		if _, err := jws.Algorithm(k.Public()); err != nil {
			return nil, fmt.Errorf("signing key %d: %w", n+1, err)
		}
	}
	signer, err := jws.NewSigner(keys[0])
	if err != nil {
		return nil, err
	}
	return &Issuer{name: name, ttl: ttl, signer: signer, keys: keys}, nil
}

// Algorithm returns the JWS algorithm the issuer signs with.
func (i *Issuer) Algorithm() string { return i.signer.Algorithm() }

// TTL returns the lifetime of the tokens the issuer signs.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// PublicKeys returns the public halves of all keys, the signing key first,
// for publishing (e.g. as a JWKS) while keys are rotated.
func (i *Issuer) PublicKeys() []crypto.PublicKey {
	pubs := make([]crypto.PublicKey, len(i.keys))
	for n, k := range i.keys {
		pubs[n] = k.Public()
	}
	return pubs
}

// Token is a signed access token and the facts a reply needs about it.
type Token struct {
	Raw                 string // the compact JWS; a secret, never log it
	ID                  string // the jti, for audit lines
	IssuedAt, ExpiresAt time.Time
}

// tokenClaims is the token body distribution's token.ClaimSet reads.
type tokenClaims struct {
	Issuer     string          `json:"iss"`
	Subject    string          `json:"sub"`
	Audience   string          `json:"aud"`
	Expiration int64           `json:"exp"`
	NotBefore  int64           `json:"nbf"`
	IssuedAt   int64           `json:"iat"`
	JWTID      string          `json:"jti"`
	Access     []access.Access `json:"access"`
	// Refused is this project's own claim, "stx_refused": what the policy
	// refused of the request and why (access.Refusal), for the registry
	// to tell the client when the token does not cover a request.
	// Distribution ignores claims it does not know.
	Refused []access.Refusal `json:"stx_refused,omitempty"`
}

// Sign issues a token for subject, valid at audience (the registry's
// service) from now for the issuer's TTL, granting access and carrying
// the refusals of the same request (see Policy.Grant; nil for none).
func (i *Issuer) Sign(subject, audience string, granted []access.Access, refused []access.Refusal, now time.Time) (Token, error) {
	if audience == "" {
		return Token{}, errors.New("sign token: empty audience")
	}
	if granted == nil {
		granted = []access.Access{} // "access": [] rather than null
	}
	var jti [jtiBytes]byte
	rand.Read(jti[:]) // never fails (crypto/rand panics rather)
	iat := now.Unix()
	c := tokenClaims{
		Issuer:     i.name,
		Subject:    subject,
		Audience:   audience,
		Expiration: iat + int64(i.ttl/time.Second),
		NotBefore:  iat,
		IssuedAt:   iat,
		JWTID:      b64.EncodeToString(jti[:]),
		Access:     granted,
		Refused:    refused,
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return Token{}, fmt.Errorf("sign token: %w", err)
	}
	raw, err := i.signer.Sign(payload)
	if err != nil {
		return Token{}, fmt.Errorf("sign token: %w", err)
	}
	return Token{
		Raw:       raw,
		ID:        c.JWTID,
		IssuedAt:  time.Unix(c.IssuedAt, 0),
		ExpiresAt: time.Unix(c.Expiration, 0),
	}, nil
}

// Load reads the signing keys at paths (the first signs) and returns
// an Issuer for them. The daemon calls it at start and on SIGHUP.
func Load(name string, ttl time.Duration, paths []string) (*Issuer, error) {
	keys := make([]crypto.Signer, 0, len(paths))
	for _, p := range paths {
		k, err := jws.LoadSigningKey(p)
		if err != nil {
			return nil, fmt.Errorf("signing_key: %w", err)
		}
		keys = append(keys, k)
	}
	return New(name, ttl, keys...)
}
