package redfishemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Resource paths. The single system, manager and chassis have Id "1".
const (
	pathRoot     = "/redfish/v1"
	pathSessSvc  = pathRoot + "/SessionService"
	pathSessions = pathSessSvc + "/Sessions"
	pathSystems  = pathRoot + "/Systems"
	pathSystem   = pathSystems + "/1"
	pathReset    = pathSystem + "/Actions/ComputerSystem.Reset"
	pathManagers = pathRoot + "/Managers"
	pathManager  = pathManagers + "/1"
	pathMgrReset = pathManager + "/Actions/Manager.Reset"
	pathChassisC = pathRoot + "/Chassis"
	pathChassis  = pathChassisC + "/1"
)

const maxBody = 64 << 10

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	open := func(pattern string, h http.HandlerFunc) { mux.HandleFunc(pattern, h) }
	authed := func(pattern string, h http.HandlerFunc) { mux.HandleFunc(pattern, s.requireAuth(h)) }

	open("GET /redfish", s.versions)
	open("GET "+pathRoot, s.serviceRoot)
	open("POST "+pathSessions, s.login)
	authed("GET "+pathSessSvc, s.sessionService)
	authed("GET "+pathSessions, s.sessionList)
	authed("GET "+pathSessions+"/{id}", s.sessionGet)
	authed("DELETE "+pathSessions+"/{id}", s.sessionDelete)
	authed("GET "+pathSystems, s.collection("ComputerSystemCollection", "Computer System Collection", pathSystem))
	authed("GET "+pathSystem, s.system)
	authed("PATCH "+pathSystem, s.systemPatch)
	authed("POST "+pathReset, s.systemReset)
	authed("GET "+pathManagers, s.collection("ManagerCollection", "Manager Collection", pathManager))
	authed("GET "+pathManager, s.manager)
	authed("POST "+pathMgrReset, s.managerReset)
	authed("GET "+pathChassisC, s.collection("ChassisCollection", "Chassis Collection", pathChassis))
	authed("GET "+pathChassis, s.chassis)
	authed("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", fmt.Sprintf("The resource at the URI %s was not found.", r.URL.Path))
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		// Redfish URIs are the same with or without a trailing slash.
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
			r.URL.Path = strings.TrimRight(p, "/")
		}
		r.Body = http.MaxBytesReader(rec, r.Body, maxBody)
		rec.Header().Set("OData-Version", "4.0")
		mux.ServeHTTP(rec, r)
		s.record(r, rec.status)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) requireAuth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authenticated(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="vrack BMC"`)
			s.fail(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "There is no valid session established with the implementation.")
			return
		}
		h(w, r)
	}
}

func link(path string) map[string]string { return map[string]string{"@odata.id": path} }

func (s *Server) versions(w http.ResponseWriter, _ *http.Request) {
	s.reply(w, http.StatusOK, map[string]any{"v1": pathRoot + "/"})
}

func (s *Server) serviceRoot(w http.ResponseWriter, _ *http.Request) {
	s.reply(w, http.StatusOK, map[string]any{
		"@odata.id":      pathRoot,
		"@odata.type":    "#ServiceRoot.v1_15_0.ServiceRoot",
		"Id":             "RootService",
		"Name":           "vrack Redfish Service",
		"RedfishVersion": "1.17.0",
		"UUID":           s.cfg.UUID,
		"Product":        "rackflow vrack BMC emulator",
		"Vendor":         "rackflow",
		"Systems":        link(pathSystems),
		"Managers":       link(pathManagers),
		"Chassis":        link(pathChassisC),
		"SessionService": link(pathSessSvc),
		"Links":          map[string]any{"Sessions": link(pathSessions)},
	})
}

func (s *Server) collection(typ, name string, members ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		list := make([]map[string]string, 0, len(members))
		for _, m := range members {
			list = append(list, link(m))
		}
		s.reply(w, http.StatusOK, map[string]any{
			"@odata.id":           r.URL.Path,
			"@odata.type":         "#" + typ + "." + typ,
			"Name":                name,
			"Members":             list,
			"Members@odata.count": len(list),
		})
	}
}

func (s *Server) sessionService(w http.ResponseWriter, _ *http.Request) {
	s.reply(w, http.StatusOK, map[string]any{
		"@odata.id":      pathSessSvc,
		"@odata.type":    "#SessionService.v1_1_8.SessionService",
		"Id":             "SessionService",
		"Name":           "Session Service",
		"ServiceEnabled": true,
		"SessionTimeout": 1800,
		"Sessions":       link(pathSessions),
	})
}

func (s *Server) sessionJSON(ss *session) map[string]any {
	return map[string]any{
		"@odata.id":   pathSessions + "/" + ss.id,
		"@odata.type": "#Session.v1_6_0.Session",
		"Id":          ss.id,
		"Name":        "User Session",
		"UserName":    ss.user,
		"CreatedTime": ss.created.Format("2006-01-02T15:04:05Z"),
		"SessionType": "Redfish",
	}
}

// login implements POST /SessionService/Sessions {"UserName","Password"}:
// 201 with X-Auth-Token and Location, or 401.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var body struct{ UserName, Password string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		s.fail(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body submitted was malformed JSON.")
		return
	}
	if !s.credentialsOK(body.UserName, body.Password) {
		s.log.Info("redfish login refused")
		s.fail(w, http.StatusUnauthorized, "Base.1.8.ResourceAtUriUnauthorized", "While accessing the resource at /redfish/v1/SessionService/Sessions, the service received an authorization error.")
		return
	}
	ss, err := s.sessions.create(body.UserName)
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "Base.1.8.InternalError", "The request failed due to an internal service error.")
		return
	}
	w.Header().Set("X-Auth-Token", ss.token)
	w.Header().Set("Location", pathSessions+"/"+ss.id)
	s.reply(w, http.StatusCreated, s.sessionJSON(ss))
}

func (s *Server) sessionList(w http.ResponseWriter, r *http.Request) {
	var ids []string
	for _, ss := range s.sessions.list() {
		ids = append(ids, pathSessions+"/"+ss.id)
	}
	s.collection("SessionCollection", "Session Collection", ids...)(w, r)
}

func (s *Server) sessionGet(w http.ResponseWriter, r *http.Request) {
	ss := s.sessions.byID(r.PathValue("id"))
	if ss == nil {
		s.fail(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "No such session.")
		return
	}
	s.reply(w, http.StatusOK, s.sessionJSON(ss))
}

func (s *Server) sessionDelete(w http.ResponseWriter, r *http.Request) {
	if !s.sessions.delete(r.PathValue("id")) {
		s.fail(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "No such session.")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func etag(gen uint64) string { return fmt.Sprintf(`W/"%d"`, gen) }

func (s *Server) system(w http.ResponseWriter, _ *http.Request) {
	on, boot, gen := s.cfg.Machine.State()
	power := "Off"
	if on {
		power = "On"
	}
	w.Header().Set("ETag", etag(gen))
	s.reply(w, http.StatusOK, map[string]any{
		"@odata.id":    pathSystem,
		"@odata.type":  "#ComputerSystem.v1_20_0.ComputerSystem",
		"@odata.etag":  etag(gen),
		"Id":           "1",
		"Name":         s.cfg.Name,
		"SystemType":   "Physical",
		"Manufacturer": "rackflow",
		"Model":        "vrack virtual node",
		"UUID":         s.cfg.UUID,
		"PowerState":   power,
		"Status":       map[string]string{"State": "Enabled", "Health": "OK"},
		"Boot": map[string]any{
			"BootSourceOverrideEnabled":                        boot.Enabled,
			"BootSourceOverrideTarget":                         boot.Target,
			"BootSourceOverrideMode":                           boot.Mode,
			"BootSourceOverrideTarget@Redfish.AllowableValues": AllowedTargets,
		},
		"Actions": map[string]any{
			"#ComputerSystem.Reset": map[string]any{
				"target":                            pathReset,
				"ResetType@Redfish.AllowableValues": AllowedResetTypes,
			},
		},
		"Links": map[string]any{
			"ManagedBy": []map[string]string{link(pathManager)},
			"Chassis":   []map[string]string{link(pathChassis)},
		},
	})
}

// systemPatch accepts {"Boot": {...}}; other writable properties are not
// emulated (400 PropertyNotWritable). If-Match, when sent, must match.
func (s *Server) systemPatch(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		s.fail(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body submitted was malformed JSON.")
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" {
		if _, _, gen := s.cfg.Machine.State(); strings.Trim(strings.TrimPrefix(m, "W/"), `"`) != fmt.Sprint(gen) {
			s.fail(w, http.StatusPreconditionFailed, "Base.1.8.PreconditionFailed", "The ETag supplied did not match the ETag required to change this resource.")
			return
		}
	}
	for k := range body {
		if k != "Boot" {
			s.fail(w, http.StatusBadRequest, "Base.1.8.PropertyNotWritable", fmt.Sprintf("The property %s is a read only property and cannot be assigned a value.", k))
			return
		}
	}
	var boot struct {
		BootSourceOverrideEnabled, BootSourceOverrideTarget, BootSourceOverrideMode string
	}
	if raw, ok := body["Boot"]; ok {
		if err := json.Unmarshal(raw, &boot); err != nil {
			s.fail(w, http.StatusBadRequest, "Base.1.8.PropertyValueTypeError", "The value for the property Boot is of a different type than the property can accept.")
			return
		}
	}
	err := s.cfg.Machine.SetBoot(Boot{Enabled: boot.BootSourceOverrideEnabled, Target: boot.BootSourceOverrideTarget, Mode: boot.BootSourceOverrideMode})
	if err != nil {
		s.fail(w, http.StatusBadRequest, "Base.1.8.PropertyValueNotInList", err.Error())
		return
	}
	s.log.Info("redfish boot override", "enabled", boot.BootSourceOverrideEnabled, "target", boot.BootSourceOverrideTarget, "mode", boot.BootSourceOverrideMode)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) systemReset(w http.ResponseWriter, r *http.Request) {
	var body struct{ ResetType string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		s.fail(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body submitted was malformed JSON.")
		return
	}
	if body.ResetType == "" {
		s.fail(w, http.StatusBadRequest, "Base.1.8.ActionParameterMissing", "The action ComputerSystem.Reset requires the parameter ResetType to be present in the request body.")
		return
	}
	if err := s.cfg.Machine.Reset(body.ResetType); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrInvalidValue) {
			status = http.StatusBadRequest
		}
		s.fail(w, status, "Base.1.8.ActionParameterNotSupported", err.Error())
		return
	}
	s.log.Info("redfish reset", "type", body.ResetType)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) manager(w http.ResponseWriter, _ *http.Request) {
	s.reply(w, http.StatusOK, map[string]any{
		"@odata.id":       pathManager,
		"@odata.type":     "#Manager.v1_17_0.Manager",
		"Id":              "1",
		"Name":            "vrack BMC",
		"ManagerType":     "BMC",
		"FirmwareVersion": "vrack-1",
		"PowerState":      "On",
		"Status":          map[string]string{"State": "Enabled", "Health": "OK"},
		"Actions": map[string]any{
			"#Manager.Reset": map[string]any{
				"target":                            pathMgrReset,
				"ResetType@Redfish.AllowableValues": []string{"GracefulRestart", "ForceRestart"},
			},
		},
		"Links": map[string]any{
			"ManagerForServers": []map[string]string{link(pathSystem)},
			"ManagerForChassis": []map[string]string{link(pathChassis)},
		},
	})
}

// managerReset accepts a BMC reset; the emulated BMC has no state to lose.
func (s *Server) managerReset(w http.ResponseWriter, r *http.Request) {
	var body struct{ ResetType string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || (body.ResetType != "GracefulRestart" && body.ResetType != "ForceRestart") {
		s.fail(w, http.StatusBadRequest, "Base.1.8.ActionParameterNotSupported", "ResetType must be GracefulRestart or ForceRestart.")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) chassis(w http.ResponseWriter, _ *http.Request) {
	on, _, _ := s.cfg.Machine.State()
	power := "Off"
	if on {
		power = "On"
	}
	s.reply(w, http.StatusOK, map[string]any{
		"@odata.id":   pathChassis,
		"@odata.type": "#Chassis.v1_23_0.Chassis",
		"Id":          "1",
		"Name":        s.cfg.Name,
		"ChassisType": "RackMount",
		"PowerState":  power,
		"Status":      map[string]string{"State": "Enabled", "Health": "OK"},
		"Links": map[string]any{
			"ComputerSystems": []map[string]string{link(pathSystem)},
			"ManagedBy":       []map[string]string{link(pathManager)},
		},
	})
}

func (s *Server) reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(body); err != nil {
		s.log.Debug("redfish reply", "err", err)
	}
}

// fail writes a Redfish error response.
func (s *Server) fail(w http.ResponseWriter, status int, code, msg string) {
	s.reply(w, status, map[string]any{"error": map[string]any{
		"code":    code,
		"message": msg,
		"@Message.ExtendedInfo": []map[string]any{{
			"MessageId": code,
			"Message":   msg,
			"Severity":  "Warning",
		}},
	}})
}
