package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	_ "crypto/sha512" // links SHA-384 and SHA-512 for crypto.Hash.New
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

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
	// MaxKeyFileBytes bounds a signing key file: an RSA 8192 key is about
	// 6 KiB of PEM; the rest leaves room for a certificate alongside.
	MaxKeyFileBytes = 64 << 10
	// minRSABits is the smallest RSA key we sign with.
	minRSABits = 2048
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
	signer crypto.Signer
	keys   []crypto.Signer
	kid    string
	alg    string
	hash   crypto.Hash // 0 for Ed25519, which signs the message itself
	ecSize int         // ECDSA field size in bytes for r||s; 0 otherwise
	header string      // base64url of the JSON header, the same for every token
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
		if _, err := Algorithm(k.Public()); err != nil {
			return nil, fmt.Errorf("signing key %d: %w", n+1, err)
		}
	}
	pub := keys[0].Public()
	alg, _ := Algorithm(pub)
	kid, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	i := &Issuer{name: name, ttl: ttl, signer: keys[0], keys: keys, kid: kid, alg: alg}
	switch alg {
	case "ES256", "RS256":
		i.hash = crypto.SHA256
	case "ES384":
		i.hash = crypto.SHA384
	case "ES512":
		i.hash = crypto.SHA512
	}
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		i.ecSize = (k.Curve.Params().BitSize + 7) / 8
	}
	h, err := json.Marshal(struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}{"JWT", alg, kid})
	if err != nil {
		return nil, err
	}
	i.header = b64.EncodeToString(h)
	return i, nil
}

// Algorithm returns the JWS algorithm the issuer signs with.
func (i *Issuer) Algorithm() string { return i.alg }

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
}

// Sign issues a token for subject, valid at audience (the registry's
// service) from now for the issuer's TTL, granting access.
func (i *Issuer) Sign(subject, audience string, granted []access.Access, now time.Time) (Token, error) {
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
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return Token{}, fmt.Errorf("sign token: %w", err)
	}
	buf := make([]byte, 0, len(i.header)+1+b64.EncodedLen(len(payload))+1+b64.EncodedLen(512))
	buf = append(buf, i.header...)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, payload)
	sig, err := i.signature(buf)
	if err != nil {
		return Token{}, fmt.Errorf("sign token: %w", err)
	}
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	return Token{
		Raw:       string(buf),
		ID:        c.JWTID,
		IssuedAt:  time.Unix(c.IssuedAt, 0),
		ExpiresAt: time.Unix(c.Expiration, 0),
	}, nil
}

// signature signs the JWS signing input with the issuer's algorithm.
func (i *Issuer) signature(input []byte) ([]byte, error) {
	if i.hash == 0 {
		return i.signer.Sign(rand.Reader, input, crypto.Hash(0)) // Ed25519
	}
	h := i.hash.New()
	h.Write(input)
	sig, err := i.signer.Sign(rand.Reader, h.Sum(nil), i.hash)
	if err != nil || i.ecSize == 0 {
		return sig, err // RSA PKCS#1 v1.5
	}
	// crypto.Signer gives ECDSA signatures in ASN.1; JWS wants r and s as
	// fixed-size big-endian integers, concatenated (RFC 7518 §3.4).
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	if err != nil || len(rest) != 0 || !fits(rs.R, i.ecSize) || !fits(rs.S, i.ecSize) {
		return nil, errors.New("ecdsa signer returned a malformed signature")
	}
	out := make([]byte, 2*i.ecSize)
	rs.R.FillBytes(out[:i.ecSize])
	rs.S.FillBytes(out[i.ecSize:])
	return out, nil
}

// fits reports whether n is positive and fits in size bytes.
func fits(n *big.Int, size int) bool {
	return n.Sign() > 0 && n.BitLen() <= 8*size
}

// Load reads the signing keys at paths (the first signs) and returns
// an Issuer for them. The daemon calls it at start and on SIGHUP.
func Load(name string, ttl time.Duration, paths []string) (*Issuer, error) {
	keys := make([]crypto.Signer, 0, len(paths))
	for _, p := range paths {
		k, err := LoadSigningKey(p)
		if err != nil {
			return nil, fmt.Errorf("signing_key: %w", err)
		}
		keys = append(keys, k)
	}
	return New(name, ttl, keys...)
}
