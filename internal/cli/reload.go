package cli

import (
	"log/slog"
	"reflect"
	"strings"

	"github.com/postern/postern/internal/config"
)

// checkReloaded is what SIGHUP does with the configuration file besides
// the TLS certificate and key, which the app re-reads itself. Nothing else
// can change under a running gateway (listeners are bound and the stages
// built with it), so the file is loaded and validated as start would, and
// the keys that differ from the running configuration are logged with the
// advice to restart; a file that no longer loads is logged as an error,
// since the next restart would fail with it. The running configuration
// stays either way.
func checkReloaded(running *config.Config, load func() (*config.Config, error), log *slog.Logger) {
	next, err := load()
	if err != nil {
		log.Error("config reload: the file does not load; the running configuration stays, and a restart would fail",
			slog.String("stage", "gateway"), slog.String("error", err.Error()))
		return
	}
	if keys := changedKeys(running, next); len(keys) > 0 {
		log.Warn("config changed on disk; restart to apply it (reload re-reads only the TLS certificate and key)",
			slog.String("stage", "gateway"), slog.String("keys", strings.Join(keys, ",")))
	}
}

// changedKeys names the top-level keys whose values differ between a and b.
func changedKeys(a, b *config.Config) []string {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	var keys []string
	for i := range va.NumField() {
		if reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			continue
		}
		name, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("yaml"), ",")
		if name == "" {
			name = va.Type().Field(i).Name
		}
		keys = append(keys, name)
	}
	return keys
}
