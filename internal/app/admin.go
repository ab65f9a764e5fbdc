package app

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// adminHandler serves /healthz (the process is alive), /readyz (the store
// and queue answer, the spool writes and its mover is not stuck, and the
// gateway is not draining) and /metrics.
func (a *App) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /v1/devices", a.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, a.devices.list())
	})))
	mux.Handle("GET /v1/trace/{id}", a.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := postern.ParseMsgID(r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		evs, err := trace.Read(r.Context(), a.store, id, a.routes.Names())
		if err != nil {
			http.Error(w, "no such message", http.StatusNotFound)
			return
		}
		writeJSON(w, evs)
	})))
	mux.Handle("POST /v1/replay/{id}", a.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := postern.ParseMsgID(r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		msg, err := replay(r.Context(), a.be, a.routes, id, r.URL.Query().Get("route"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		a.log.Info("replayed", slog.String("msg_id", id.String()), slog.String("route", r.URL.Query().Get("route")))
		writeJSON(w, map[string]string{"result": msg})
	})))
	mux.Handle("POST /v1/redrive/{queue}", a.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := a.redrive(r.Context(), r.PathValue("queue"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		writeJSON(w, map[string]int{"moved": n})
	})))
	// Profiles, for finding where CPU and memory go under real load; behind
	// the same guard as the other operator endpoints.
	mux.Handle("GET /debug/pprof/", a.guard(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", a.guard(http.HandlerFunc(pprof.Profile)))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}

// guard admits operations requests with the admin token, or from loopback
// when no token is configured.
func (a *App) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.adminToken != "" {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(a.adminToken)) != 1 {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !ap.Addr().Unmap().IsLoopback() {
			http.Error(w, "the operations API is open to loopback only unless admin.token is set", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// redrive moves a local queue's dead-lettered jobs back to it.
func (a *App) redrive(ctx context.Context, name string) (int, error) {
	n, err := redriveLocal(ctx, a.q, name)
	if err == nil {
		a.log.Info("redrove dead-lettered jobs", slog.String("queue", name), slog.Int("jobs", n))
	}
	return n, err
}

func (a *App) ready(ctx context.Context) error {
	if a.draining.Load() {
		return errors.New("draining")
	}
	if err := a.listenersAccepting(); err != nil {
		return err
	}
	if err := a.diskReady(); err != nil {
		return err
	}
	if err := a.be.spool.ready(a.cfg.Delivery.StallAlarm.D()); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return a.be.ready(ctx)
}
