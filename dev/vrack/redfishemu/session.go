package redfishemu

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// session is one Redfish login session.
type session struct {
	id      string
	token   string
	user    string
	created time.Time
}

// sessions holds the live sessions of one BMC, evicting the oldest beyond max.
type sessions struct {
	mu      sync.Mutex
	max     int
	next    int
	byToken map[string]*session
	order   []*session // creation order, oldest first
}

func newSessions(max int) *sessions {
	return &sessions{max: max, byToken: make(map[string]*session)}
}

func (ss *sessions) create(user string) (*session, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.next++
	s := &session{id: strconv.Itoa(ss.next), token: hex.EncodeToString(raw), user: user, created: time.Now().UTC()}
	if len(ss.order) >= ss.max {
		oldest := ss.order[0]
		ss.order = ss.order[1:]
		delete(ss.byToken, oldest.token)
	}
	ss.order = append(ss.order, s)
	ss.byToken[s.token] = s
	return s, nil
}

func (ss *sessions) lookup(token string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.byToken[token]
}

func (ss *sessions) byID(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, s := range ss.order {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (ss *sessions) list() []*session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return append([]*session(nil), ss.order...)
}

func (ss *sessions) delete(id string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for i, s := range ss.order {
		if s.id == id {
			ss.order = append(ss.order[:i], ss.order[i+1:]...)
			delete(ss.byToken, s.token)
			return true
		}
	}
	return false
}

// credentialsOK compares in constant time.
func (s *Server) credentialsOK(user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(s.cfg.Username))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.Password))
	return u&p == 1
}

// authenticated accepts a valid X-Auth-Token or correct HTTP basic credentials.
func (s *Server) authenticated(r *http.Request) bool {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		return s.sessions.lookup(tok) != nil
	}
	if user, pass, ok := r.BasicAuth(); ok {
		return s.credentialsOK(user, pass)
	}
	return false
}
