package app

import (
	"net/http"

	"github.com/postern/postern/internal/apispec"
)

// mountContracts adds the OpenAPI document and the payload JSON Schemas to the admin mux.
//
// They stay behind adminGate like the rest of /v1, though they hold nothing
// secret: the same documents are in the repository (internal/apispec) for
// anyone without the token, and keeping the gate's one rule (only /healthz
// and /readyz are open) is worth more than sparing a tool its token.
func (a *App) mountContracts(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", apispec.OpenAPIContentType)
		w.Write(apispec.OpenAPI())
	})
	mux.HandleFunc("GET /v1/schemas/{name}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := apispec.Schema(r.PathValue("name"))
		if !ok {
			http.Error(w, "no such schema", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", apispec.SchemaContentType)
		w.Write(b)
	})
}
