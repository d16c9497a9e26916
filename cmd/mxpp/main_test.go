package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The tests run this test binary as the command: with MXPP_RUN_MAIN set,
// TestMain runs main with the arguments after "--".
func TestMain(m *testing.M) {
	if os.Getenv("MXPP_RUN_MAIN") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"mxpp"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "MXPP_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	if out, code := run(t, "--version"); code != 0 || !strings.HasPrefix(out, "mxpp ") {
		t.Errorf("--version: %q, exit %d", out, code)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("homeserver:\n  address: nope\n  domain: hs.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := run(t, "-c", bad)
	if code != 1 || !strings.Contains(out, "homeserver.address") {
		t.Errorf("bad config: %q, exit %d; want the key named and exit 1", out, code)
	}
	if out, code = run(t, "-c", filepath.Join(dir, "missing.yaml")); code != 1 {
		t.Errorf("missing config: %q, exit %d; want exit 1", out, code)
	}
	example, err := os.ReadFile("../../example-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err = os.WriteFile(cfg, example, 0o600); err != nil {
		t.Fatal(err)
	}
	reg := filepath.Join(dir, "registration.yaml")
	if out, code = run(t, "-g", "-c", cfg, "-r", reg); code != 0 {
		t.Fatalf("-g: %q, exit %d", out, code)
	}
	if data, err := os.ReadFile(reg); err != nil || !strings.Contains(string(data), "sender_localpart: xmppbot") {
		t.Errorf("registration: %q, %v", data, err)
	}
}
