package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuSample is where the machine's and the homeserver's CPU time stood at
// one moment: a throughput run between two samples shows whether the
// machine was saturated and what the homeserver spent per message, which
// is what tells a slower bridged path from a homeserver that worked harder.
type cpuSample struct {
	busy, total time.Duration // all cores, from /proc/stat
	hs          time.Duration // the homeserver process
}

// userHZ is the unit of /proc's CPU times.
const userHZ = 100

func (s *stack) cpuSample() cpuSample {
	var c cpuSample
	if stat, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := bytes.Cut(stat, []byte("\n"))
		// cpu user nice system idle iowait irq softirq steal, then guest
		// times, which user counts already.
		f := strings.Fields(string(line))
		for i, v := range f[1:min(len(f), 9)] {
			n, _ := strconv.ParseInt(v, 10, 64)
			d := time.Duration(n) * time.Second / userHZ
			c.total += d
			if i != 3 && i != 4 { // idle, iowait
				c.busy += d
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(s.HSDir, "dendrite.pid")); err == nil {
		c.hs, _ = processCPU(strings.TrimSpace(string(b)))
	}
	return c
}

// processCPU is a process's user and system time, and whether it exists.
func processCPU(pid string) (time.Duration, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%s/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / userHZ, true
}

// withCPU runs a throughput run and notes in its result how busy the
// machine was and the homeserver's CPU per message.
func (b *bench) withCPU(run func() (result, error)) (result, error) {
	before := b.s.cpuSample()
	r, err := run()
	if err == nil {
		b.noteCPU(&r, before)
	}
	return r, err
}

// noteCPU notes in r how busy the machine was since before and the
// homeserver's CPU per message.
func (b *bench) noteCPU(r *result, before cpuSample) {
	after := b.s.cpuSample()
	if total := after.total - before.total; total > 0 {
		r.MachineBusy = float64(after.busy-before.busy) / float64(total)
	}
	if r.Messages > 0 {
		r.HomeserverCPUms = float64(after.hs-before.hs) / float64(time.Millisecond) / float64(r.Messages)
	}
}
