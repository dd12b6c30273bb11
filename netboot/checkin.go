package netboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
)

// CheckIn is the JSON body of POST /v1/checkin.
type CheckIn struct {
	Node    string `json:"node"`
	Run     string `json:"run"`
	Token   string `json:"token"`
	Status  string `json:"status"`            // CheckInOK | CheckInError
	Digest  string `json:"digest,omitempty"`  // "sha256:<hex>" of what the agent wrote
	Message string `json:"message,omitempty"` // error text when Status == CheckInError
}

// Values of CheckIn.Status.
const (
	CheckInOK    = "ok"
	CheckInError = "error"
)

// Signaler turns a verified check-in into a workflow signal (implemented by
// package starter). It returns an error wrapping ErrNoOperation when no
// operation is waiting for the node.
type Signaler interface {
	CheckIn(ctx context.Context, c CheckIn) error
}

// ErrNoOperation is returned (wrapped) by a Signaler when no operation is in
// progress for the node; the check-in API answers 409.
var ErrNoOperation = errors.New("no operation in progress for this node")

// MaxCheckInBody is the largest accepted check-in body in bytes; larger
// bodies get 413.
const MaxCheckInBody = 64 << 10

// checkInHandler serves POST /v1/checkin:
//
//	202 accepted (Signaler.CheckIn returned nil)
//	400 malformed JSON, unknown fields, missing node/run/status, bad status/digest
//	401 missing token
//	403 token does not verify for (node, run)
//	405 method other than POST
//	409 Signaler returned ErrNoOperation
//	413 body larger than MaxCheckInBody
//	502 Signaler failed otherwise
//
// Every refusal has the JSON body {"error": "..."} and never calls the
// Signaler.
type checkInHandler struct {
	key      []byte
	signaler Signaler
	log      *slog.Logger
	obs      *instruments // nil records nothing
}

func (h *checkInHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.obs.checkIn(h.serve(w, r))
}

// serve answers the check-in and returns the status it answered with.
func (h *checkInHandler) serve(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return http.StatusMethodNotAllowed
	}
	c, status, err := decodeCheckIn(w, r)
	log := h.log.With(h.who(r.RemoteAddr, c.Node)...)
	if err != nil {
		log.Warn("check-in refused", "status", status, "remote", r.RemoteAddr, "err", err)
		writeJSONError(w, status, err.Error())
		return status
	}
	log = log.With("run", c.Run, "checkin_status", c.Status)
	if !VerifyToken(h.key, c.Node, c.Run, c.Token) {
		log.Warn("check-in refused: token does not verify", "remote", r.RemoteAddr)
		writeJSONError(w, http.StatusForbidden, "token does not verify for this node and run")
		return http.StatusForbidden
	}
	if err := h.signaler.CheckIn(r.Context(), c); err != nil {
		if errors.Is(err, ErrNoOperation) {
			log.Warn("check-in refused: no operation in progress", "err", err)
			writeJSONError(w, http.StatusConflict, ErrNoOperation.Error())
			return http.StatusConflict
		}
		log.Error("check-in signal failed", "err", err)
		writeJSONError(w, http.StatusBadGateway, "could not deliver the check-in")
		return http.StatusBadGateway
	}
	log.Info("check-in accepted", "digest", c.Digest, "message", c.Message)
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
	return http.StatusAccepted
}

// who returns the log attributes naming the machine behind a check-in: the
// node its body names (when any) and, from the client table, the MAC and
// rack of the address it came from when that address is leased to the same
// node (or the body names none).
func (h *checkInHandler) who(remote, node string) []any {
	id := h.obs.lookup(remote)
	if node != "" && id.node != node {
		id = identity{node: node}
	}
	return id.attrs()
}

// decodeCheckIn reads and validates the body; on error it returns the HTTP
// status to answer with.
func decodeCheckIn(w http.ResponseWriter, r *http.Request) (CheckIn, int, error) {
	var c CheckIn
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxCheckInBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		if tooLarge(err) {
			return c, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", MaxCheckInBody)
		}
		return c, http.StatusBadRequest, fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if tooLarge(err) {
			return c, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", MaxCheckInBody)
		}
		return c, http.StatusBadRequest, errors.New("malformed JSON: data after the object")
	}
	switch {
	case c.Node == "":
		return c, http.StatusBadRequest, errors.New("missing field: node")
	case c.Run == "":
		return c, http.StatusBadRequest, errors.New("missing field: run")
	case c.Status == "":
		return c, http.StatusBadRequest, errors.New("missing field: status")
	case c.Status != CheckInOK && c.Status != CheckInError:
		return c, http.StatusBadRequest, fmt.Errorf("invalid status %q (want %q or %q)", c.Status, CheckInOK, CheckInError)
	case c.Digest != "" && !digestRE.MatchString(c.Digest):
		return c, http.StatusBadRequest, errors.New(`invalid digest (want "sha256:<64 lower-case hex>")`)
	case c.Token == "":
		return c, http.StatusUnauthorized, errors.New("missing token")
	}
	return c, 0, nil
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
