package netboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// USB-identify (Purdue "Steele"): a new machine boots the identify profile
// with a pool address, and its agent waits for a USB mass-storage device.
// When an operator inserts one, the agent calls POST /v1/identify with its
// MAC and the scope (rack or subnet) its profile names; the Identifier (the
// Identify workflow's update, through package starter) answers with the
// next position's slot, name and production IP.
//
// Authentication: the node has no per-provision token yet, so the call
// carries a token bound to the scope, MintIdentifyToken(key, scope), which
// the identify profile puts on the kernel command line (IdentifyArgs). It
// is the HMAC of the check-in tokens under the same key with the subject
// "identify/<scope>" — a node name never contains "/", so an identify token
// never verifies as a check-in token or the other way round, and a token of
// one scope does not work for another. Like the check-in token it proves
// the caller got its boot script from this service, not physical presence:
// that is the USB insertion the agent waits for, and the operator sees each
// assignment in the identify workflow and can undo it.

// IdentifyRequest is the JSON body of POST /v1/identify.
type IdentifyRequest struct {
	MAC   string `json:"mac"`   // the node's MAC, any form net.ParseMAC takes (6 bytes)
	Scope string `json:"scope"` // rack or subnet label from the identify profile
	Token string `json:"token"` // MintIdentifyToken(key, scope)
	// Confirm says the node applied its assignment (sent from the
	// production address): the answer is the confirmed assignment.
	Confirm bool `json:"confirm,omitempty"`
}

// IdentifyCall is what the Identifier gets: a verified request with a
// canonical MAC and the caller's address (its pool address).
type IdentifyCall struct {
	Scope string
	MAC   string // canonical, lower-case, colon-separated
	From  string // the request's remote IP
	// Confirm: the node confirms the assignment it applied (from its
	// production address) instead of asking for one.
	Confirm bool
}

// IdentifyAssignment is the answer of POST /v1/identify: the identity the
// node takes.
type IdentifyAssignment struct {
	Scope string `json:"scope"`
	Slot  int    `json:"slot"`
	Name  string `json:"name"`
	IP    string `json:"ip"` // production address, possibly with its prefix ("10.1.0.5/24")
	MAC   string `json:"mac"`
}

// Identifier turns a verified identify call into the identify workflow's
// update (implemented by package starter). It returns the MAC's
// assignment — the same one again when the MAC already has one — or an
// error wrapping ErrNoIdentify, ErrMACRefused or ErrPlanExhausted. A
// confirmation (IdentifyCall.Confirm) returns the confirmed assignment, or
// ErrMACRefused when the MAC has none (undone meanwhile).
type Identifier interface {
	Identify(ctx context.Context, c IdentifyCall) (IdentifyAssignment, error)
}

// Errors an Identifier returns (wrapped, with the reason).
var (
	// ErrNoIdentify: no identification is running for the scope (or it
	// is ending); 409.
	ErrNoIdentify = errors.New("no identification running for this scope")
	// ErrPlanExhausted: every position of the scope's plan is taken; 409.
	ErrPlanExhausted = errors.New("every position of the plan is assigned or skipped")
	// ErrMACRefused: the identification refused this MAC; 422.
	ErrMACRefused = errors.New("MAC refused")
)

// Machine-readable codes of the identify API's error answers ("code").
const (
	IdentifyCodeNoIdentify    = "no-identify"
	IdentifyCodePlanExhausted = "plan-exhausted"
	IdentifyCodeMACRefused    = "mac-refused"
)

// MaxIdentifyBody is the largest accepted identify body in bytes.
const MaxIdentifyBody = 4 << 10

// identifyTimeout bounds the wait for the Identifier (the update waits for
// a worker); the agent retries a 504, and gets the same answer.
const identifyTimeout = 30 * time.Second

// identifyTokenRun is the second HMAC input of identify tokens.
const identifyTokenRun = "usb-identify"

// MintIdentifyToken returns the identify token of scope: MintToken(key,
// "identify/"+scope, "usb-identify").
func MintIdentifyToken(key []byte, scope string) string {
	return MintToken(key, "identify/"+scope, identifyTokenRun)
}

// VerifyIdentifyToken reports whether token is MintIdentifyToken(key,
// scope), in constant time. An empty key never verifies.
func VerifyIdentifyToken(key []byte, scope, token string) bool {
	return VerifyToken(key, "identify/"+scope, identifyTokenRun, token)
}

// IdentifyArgs is what an identify boot profile tells the agent, as kernel
// command-line words.
type IdentifyArgs struct {
	URL   string // rackflow.identify=http://10.77.0.1:8880/v1/identify
	Scope string // rackflow.scope=r01
	Token string // rackflow.token=<MintIdentifyToken(key, scope)>
}

// Kernel command-line keys of IdentifyArgs (the token uses ArgToken).
const (
	ArgIdentify = "rackflow.identify"
	ArgScope    = "rackflow.scope"
)

// Encode returns "rackflow.identify=…", "rackflow.scope=…",
// "rackflow.token=…"; call Validate first when the values come from
// outside.
func (a IdentifyArgs) Encode() []string {
	return []string{ArgIdentify + "=" + a.URL, ArgScope + "=" + a.Scope, ArgToken + "=" + a.Token}
}

// Validate checks URL (absolute http(s)), Scope (a valid name) and Token
// (a non-empty word); errors wrap ErrAgentArgs and name the key.
func (a IdentifyArgs) Validate() error {
	switch {
	case a.URL == "":
		return missingArg(ArgIdentify)
	case validHTTPURL(a.URL) != nil:
		return invalidArg(ArgIdentify, validHTTPURL(a.URL))
	case a.Scope == "":
		return missingArg(ArgScope)
	case ValidName(a.Scope) != nil:
		return invalidArg(ArgScope, ValidName(a.Scope))
	case a.Token == "":
		return missingArg(ArgToken)
	case validWord(a.Token) != nil:
		return invalidArg(ArgToken, validWord(a.Token))
	}
	return nil
}

// ParseIdentifyArgs reads the identify words from a kernel command line
// (other words are ignored, the last value of a key wins) and validates
// them.
func ParseIdentifyArgs(words []string) (IdentifyArgs, error) {
	var a IdentifyArgs
	fields := map[string]*string{ArgIdentify: &a.URL, ArgScope: &a.Scope, ArgToken: &a.Token}
	for _, w := range words {
		if key, val, ok := strings.Cut(w, "="); ok {
			if dst, known := fields[key]; known {
				*dst = val
			}
		}
	}
	if err := a.Validate(); err != nil {
		return IdentifyArgs{}, err
	}
	return a, nil
}

// identifyHandler serves POST /v1/identify:
//
//	200 the assignment (IdentifyAssignment), new or the MAC's existing one;
//	    for a confirmation ("confirm": true) the confirmed assignment
//	400 malformed JSON, unknown fields, missing or invalid mac/scope
//	401 missing token
//	403 token does not verify for the scope
//	405 method other than POST
//	409 no identification running for the scope ("no-identify"), or
//	    every position taken ("plan-exhausted")
//	413 body larger than MaxIdentifyBody
//	422 the identification refused the MAC ("mac-refused"), with the reason
//	    (a confirmation: the MAC has no assignment)
//	502 the Identifier failed otherwise
//	504 the Identifier did not answer within 30 s (retry: same answer)
//
// Every refusal has the JSON body {"error": "...", "code": "..."} (code
// only where listed); a refusal before the Identifier is called never
// calls it.
type identifyHandler struct {
	key        []byte
	identifier Identifier
	log        *slog.Logger
	timeout    time.Duration // 0 → identifyTimeout
}

func (h *identifyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return
	}
	req, mac, status, err := decodeIdentify(w, r)
	if err != nil {
		h.log.Warn("identify refused", "status", status, "remote", r.RemoteAddr, "scope", req.Scope, "mac", req.MAC, "err", err)
		writeJSONError(w, status, err.Error())
		return
	}
	from := r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		from = host
	}
	log := h.log.With("scope", req.Scope, "mac", mac, "remote", from)
	if !VerifyIdentifyToken(h.key, req.Scope, req.Token) {
		log.Warn("identify refused: token does not verify")
		writeJSONError(w, http.StatusForbidden, "token does not verify for this scope")
		return
	}
	timeout := h.timeout
	if timeout <= 0 {
		timeout = identifyTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	a, err := h.identifier.Identify(ctx, IdentifyCall{Scope: req.Scope, MAC: mac, From: from, Confirm: req.Confirm})
	if err != nil {
		status, code := http.StatusBadGateway, ""
		switch {
		case errors.Is(err, ErrNoIdentify):
			status, code = http.StatusConflict, IdentifyCodeNoIdentify
		case errors.Is(err, ErrPlanExhausted):
			status, code = http.StatusConflict, IdentifyCodePlanExhausted
		case errors.Is(err, ErrMACRefused):
			status, code = http.StatusUnprocessableEntity, IdentifyCodeMACRefused
		case errors.Is(err, context.DeadlineExceeded):
			status = http.StatusGatewayTimeout
		}
		msg := err.Error()
		if status == http.StatusBadGateway {
			log.Error("identify failed", "err", err)
			msg = "could not deliver the identification"
		} else {
			log.Warn("identify refused", "status", status, "err", err)
		}
		body := map[string]string{"error": msg}
		if code != "" {
			body["code"] = code
		}
		writeJSON(w, status, body)
		return
	}
	if req.Confirm {
		log.Info("identity confirmed", "slot", a.Slot, "name", a.Name, "ip", a.IP)
	} else {
		log.Info("identified", "slot", a.Slot, "name", a.Name, "ip", a.IP)
	}
	writeJSON(w, http.StatusOK, a)
}

// decodeIdentify reads and validates the body; on error it returns the
// HTTP status to answer with. mac is the canonical MAC.
func decodeIdentify(w http.ResponseWriter, r *http.Request) (req IdentifyRequest, mac string, status int, err error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxIdentifyBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if tooLarge(err) {
			return req, "", http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", MaxIdentifyBody)
		}
		return req, "", http.StatusBadRequest, fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if tooLarge(err) {
			return req, "", http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", MaxIdentifyBody)
		}
		return req, "", http.StatusBadRequest, errors.New("malformed JSON: data after the object")
	}
	switch {
	case req.MAC == "":
		return req, "", http.StatusBadRequest, errors.New("missing field: mac")
	case req.Scope == "":
		return req, "", http.StatusBadRequest, errors.New("missing field: scope")
	}
	if mac, err = CanonicalMAC(req.MAC); err != nil {
		return req, "", http.StatusBadRequest, err
	}
	if err := ValidName(req.Scope); err != nil {
		return req, "", http.StatusBadRequest, fmt.Errorf("invalid scope: %w", err)
	}
	if req.Token == "" {
		return req, "", http.StatusUnauthorized, errors.New("missing token")
	}
	return req, mac, 0, nil
}
