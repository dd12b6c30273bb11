package netboot

import "testing"

func TestMintVerifyToken(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	tok := MintToken(key, "r01n01", "run-1")
	if len(tok) != 43 {
		t.Fatalf("token length %d, want 43 (base64url of 32 bytes, no padding)", len(tok))
	}
	if again := MintToken(key, "r01n01", "run-1"); again != tok {
		t.Fatalf("MintToken not deterministic: %q vs %q", tok, again)
	}
	tampered := []byte(tok)
	if tampered[0] == 'A' {
		tampered[0] = 'B'
	} else {
		tampered[0] = 'A'
	}
	tests := []struct {
		name       string
		key        []byte
		node, run  string
		token      string
		wantResult bool
	}{
		{"valid", key, "r01n01", "run-1", tok, true},
		{"wrong node", key, "r01n02", "run-1", tok, false},
		{"wrong run", key, "r01n01", "run-2", tok, false},
		{"wrong key", []byte("another key of 32 bytes........."), "r01n01", "run-1", tok, false},
		{"tampered", key, "r01n01", "run-1", string(tampered), false},
		{"truncated", key, "r01n01", "run-1", tok[:42], false},
		{"padded", key, "r01n01", "run-1", tok + "=", false},
		{"not base64", key, "r01n01", "run-1", "!!!!", false},
		{"empty token", key, "r01n01", "run-1", "", false},
		{"empty key never verifies", nil, "r01n01", "run-1", MintToken(nil, "r01n01", "run-1"), false},
		{"separator: node/run boundary", key, "r01n01r", "un-1", tok, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyToken(tt.key, tt.node, tt.run, tt.token); got != tt.wantResult {
				t.Fatalf("VerifyToken = %v, want %v", got, tt.wantResult)
			}
		})
	}
}
