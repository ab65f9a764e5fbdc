package app

import "net/http"

// mountLinks adds signed, expiring links to stored messages and attachments to the admin mux.
func (a *App) mountLinks(mux *http.ServeMux) {}
