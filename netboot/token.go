package netboot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// MintToken returns the check-in token for one provisioning run of a node:
// base64url (no padding) of HMAC-SHA256(key, node + "\x00" + run), 43
// characters.
func MintToken(key []byte, node, run string) string {
	return base64.RawURLEncoding.EncodeToString(tokenMAC(key, node, run))
}

// VerifyToken reports whether token is MintToken(key, node, run). The
// comparison of the MACs is constant-time. An empty key never verifies.
func VerifyToken(key []byte, node, run, token string) bool {
	if len(key) == 0 {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return false
	}
	return hmac.Equal(got, tokenMAC(key, node, run))
}

func tokenMAC(key []byte, node, run string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(node))
	m.Write([]byte{0})
	m.Write([]byte(run))
	return m.Sum(nil)
}
