package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// logWriter is where the root logger writes, per the logging section.
func logWriter(cfg LoggingConfig) io.Writer {
	if cfg.Format == "json" {
		return os.Stderr
	}
	return zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.DateTime, NoColor: !isTerminal(os.Stderr)}
}

// NewLogger builds the root logger from the logging section.
func NewLogger(cfg LoggingConfig) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(bodyFilter{out: logWriter(cfg), keepTrace: !cfg.RedactBodies}).Level(level).With().Timestamp().Logger()
}

// bodyFilter keeps the bodies of homeserver requests out of the log: they
// hold message text, and mautrix logs them (as req_body) with every
// request, at error level when one fails, as during a homeserver outage.
// Only trace lines keep them, and only without logging.redact_bodies.
// zerolog writes each event as one JSON object per Write, before any
// pretty printing.
type bodyFilter struct {
	out       io.Writer
	keepTrace bool
}

var reqBodyKey = []byte(`"req_body"`)

func (f bodyFilter) Write(p []byte) (int, error) {
	if !bytes.Contains(p, reqBodyKey) {
		return f.out.Write(p)
	}
	var entry map[string]json.RawMessage
	if err := json.Unmarshal(p, &entry); err != nil {
		// Not an event of ours: say so rather than pass it on.
		_, err = f.out.Write([]byte(`{"level":"warn","message":"A log line with a request body could not be redacted and was dropped"}` + "\n"))
		return len(p), err
	}
	if f.keepTrace && string(entry[zerolog.LevelFieldName]) == `"trace"` {
		return f.out.Write(p)
	}
	entry["req_body"] = json.RawMessage(`"[redacted]"`)
	out, err := json.Marshal(entry)
	if err != nil {
		return 0, err
	}
	if _, err = f.out.Write(append(out, '\n')); err != nil {
		return 0, err
	}
	return len(p), nil
}

// newAuditLogger returns the logger of audit events: admin actions,
// exposure changes, refusals and joins from other domains, marked
// audit=true. They are logged at info whatever the level, and also to
// logging.audit_file if set.
func newAuditLogger(cfg LoggingConfig) (zerolog.Logger, io.Closer, error) {
	w := logWriter(cfg)
	var closer io.Closer = io.NopCloser(nil)
	if cfg.AuditFile != "" {
		f, err := os.OpenFile(cfg.AuditFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return zerolog.Nop(), nil, fmt.Errorf("logging.audit_file: %w", err)
		}
		w, closer = zerolog.MultiLevelWriter(w, f), f
	}
	return zerolog.New(w).With().Timestamp().Bool("audit", true).Logger(), closer, nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
