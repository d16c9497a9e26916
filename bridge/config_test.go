package bridge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/appservice"

	"github.com/mxpp/mxpp/database"
)

func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile("../example-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data) // refuses unknown keys
	if err != nil {
		t.Fatal(err)
	}
	if err = cfg.Validate(true); err != nil {
		t.Fatalf("example config does not validate: %v", err)
	}
	if cfg.Appservice.PuppetPrefix != "_xmpp_" || cfg.Database.URI != "file:mxpp.db" || cfg.Appservice.Port != 29333 {
		t.Errorf("example config differs from the defaults it documents: %+v", cfg)
	}
	// Every key of the config is in the example with a comment above it.
	for _, key := range yamlKeys(reflect.TypeOf(Config{})) {
		loc := regexp.MustCompile(`(?m)^ *` + regexp.QuoteMeta(key) + `:`).FindIndex(data)
		if loc == nil {
			t.Errorf("example config lacks %s", key)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data[:loc[0]]), "\n"), "\n")
		if !strings.HasPrefix(strings.TrimSpace(lines[len(lines)-1]), "#") {
			t.Errorf("%s in the example config has no comment above it", key)
		}
	}
}

// yamlKeys lists the yaml keys of a config struct and its sections.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		keys = append(keys, name)
		if f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Time" {
			keys = append(keys, yamlKeys(f.Type)...)
		}
	}
	return keys
}

// TestDatabaseConfig: a PostgreSQL database with the pool keys mautrix
// bridges document, durations as Go writes them.
func TestDatabaseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte("database:\n  type: postgres\n  uri: postgres://mxpp:pw@db/mxpp?sslmode=disable\n" +
		"  max_open_conns: 30\n  max_idle_conns: 5\n  max_conn_idle_time: 5m\n  max_conn_lifetime: 1h\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Database
	if d.Type != "postgres" || d.MaxOpenConns != 30 || d.MaxIdleConns != 5 || d.MaxConnIdleTime != 5*time.Minute || d.MaxConnLifetime != time.Hour {
		t.Errorf("database section = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"homeserver:\n  adress: http://x\n", "field adress not found"},
		{"unknown: 1\n", "field unknown not found"},
		{"appservice:\n  port: not-a-port\n", "cannot unmarshal"},
	} {
		if _, err := ParseConfig([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%q) error = %v; want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestValidateNamesKey(t *testing.T) {
	base := func() *Config {
		data, _ := os.ReadFile("../example-config.yaml")
		cfg, _ := ParseConfig(data)
		cfg.Appservice.ASToken, cfg.Appservice.HSToken = "a", "h"
		return cfg
	}
	if err := base().Validate(false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key    string
		mutate func(*Config)
	}{
		{"appservice.as_token", func(c *Config) { c.Appservice.ASToken = "" }},
		{"appservice.hs_token", func(c *Config) { c.Appservice.HSToken = "" }},
		{"xmpp.server", func(c *Config) { c.XMPP.Server = "localhost" }},
		{"xmpp.domain", func(c *Config) { c.XMPP.Domain = "user@matrix.example.net" }},
		{"xmpp.secret", func(c *Config) { c.XMPP.Secret = "" }},
		{"database.uri", func(c *Config) { c.Database.URI = "postgres://x/y" }},
		{"database.uri", func(c *Config) { c.Database.Type, c.Database.URI = "postgres", "file:mxpp.db" }},
		{"database.type", func(c *Config) { c.Database.Type = "mysql" }},
		{"database", func(c *Config) { c.Database.MaxOpenConns = -1 }},
		{"logging.level", func(c *Config) { c.Logging.Level = "loud" }},
		{"logging.format", func(c *Config) { c.Logging.Format = "xml" }},
		{"homeserver.address", func(c *Config) { c.Homeserver.Address = "" }},
		{"encryption.require", func(c *Config) { c.Encryption.Require = true }},
		{"encryption.default", func(c *Config) { c.Encryption.Default = true }},
		{"encryption.self_sign", func(c *Config) { c.Encryption.SelfSign = true }},
		{"encryption.pickle_key", func(c *Config) { c.Encryption.Allow = true }},
		{"metrics.profiling", func(c *Config) { c.Metrics.Profiling = true }},
	} {
		c := base()
		tc.mutate(c)
		if err := c.Validate(false); err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("bad %s: Validate = %v; want an error starting with the key", tc.key, err)
		}
	}
}

func TestGenerateRegistration(t *testing.T) {
	dir := t.TempDir()
	cfgPath, regPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "registration.yaml")
	example, err := os.ReadFile("../example-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err = os.WriteFile(cfgPath, example, 0o600); err != nil {
		t.Fatal(err)
	}
	if err = GenerateRegistration(cfgPath, regPath); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Appservice.ASToken) < 32 || len(cfg.Appservice.HSToken) < 32 || cfg.Appservice.ASToken == cfg.Appservice.HSToken {
		t.Fatalf("tokens not generated into the config: %q %q", cfg.Appservice.ASToken, cfg.Appservice.HSToken)
	}
	written, _ := os.ReadFile(cfgPath)
	if !strings.Contains(string(written), "# The component secret configured on the XMPP server.") {
		t.Error("writing the tokens lost the config's comments")
	}
	reg, err := appservice.LoadRegistration(regPath)
	if err != nil {
		t.Fatal(err)
	}
	if reg.AppToken != cfg.Appservice.ASToken || reg.ServerToken != cfg.Appservice.HSToken {
		t.Error("registration tokens differ from the config's")
	}
	if st, _ := os.Stat(regPath); st.Mode().Perm() != 0o600 {
		t.Errorf("registration mode %v; want 0600", st.Mode().Perm())
	}
	// A second run keeps the tokens.
	if err = GenerateRegistration(cfgPath, regPath); err != nil {
		t.Fatal(err)
	}
	again, _ := LoadConfig(cfgPath)
	if again.Appservice.ASToken != cfg.Appservice.ASToken {
		t.Error("a second -g changed the tokens")
	}
}

// TestProfiling: the profiler is served on the metrics listener only when
// metrics.profiling asks for it.
func TestProfiling(t *testing.T) {
	for _, on := range []bool{false, true} {
		b := &Bridge{Config: &Config{Metrics: MetricsConfig{Enabled: true, Listen: "127.0.0.1:0", Profiling: on}}}
		var err error
		if b.DB, err = database.Open(context.Background(), database.Config{URI: "file:" + filepath.Join(t.TempDir(), "b.db")}, zerolog.Nop()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.DB.Close() })
		b.metrics = newMetrics(b)
		w := httptest.NewRecorder()
		b.metricsMux().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/debug/pprof/heap?debug=1", nil))
		if got := w.Code == http.StatusOK; got != on {
			t.Errorf("profiling %v: /debug/pprof/heap answered %d", on, w.Code)
		}
	}
}
