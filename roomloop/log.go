package roomloop

import "github.com/rs/zerolog"

// WithFields returns log with string fields, given as key and value pairs,
// that are added to each line when it is written. zerolog's With adds them
// when the logger is made, into a 500-byte buffer every such logger gets:
// a bridge pays that for each of its thousands of rooms and for every
// message, logged or not; this costs a line only when it is logged.
func WithFields(log zerolog.Logger, kv ...string) zerolog.Logger {
	return log.Hook(fields(kv))
}

type fields []string

func (f fields) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	for i := 0; i+1 < len(f); i += 2 {
		e.Str(f[i], f[i+1])
	}
}
