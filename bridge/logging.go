package bridge

import (
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
	return zerolog.New(logWriter(cfg)).Level(level).With().Timestamp().Logger()
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
