// Command mxpp runs the Matrix-XMPP bridge.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mxpp/mxpp/bridge"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "privacy-report" {
		privacyReport(os.Args[2:])
		return
	}
	configPath := flag.String("c", "config.yaml", "path to the config file")
	generate := flag.Bool("g", false, "generate the appservice registration and exit")
	registration := flag.String("r", "registration.yaml", "where -g writes the registration")
	version := flag.Bool("version", false, "print the version and exit")
	healthcheck := flag.String("healthcheck", "", "GET this URL and exit 0 if it answers 200 (for container health checks)")
	migrate := flag.String("migrate-db", "", "copy the SQLite database the config names into this empty PostgreSQL database (postgres://…) and exit; stop the bridge first")
	flag.Parse()

	switch {
	case *version:
		fmt.Println("mxpp", Version)
	case *healthcheck != "":
		if err := bridge.HealthCheck(*healthcheck); err != nil {
			fmt.Fprintln(os.Stderr, "mxpp:", err)
			os.Exit(1)
		}
	case *migrate != "":
		if err := bridge.MigrateDB(context.Background(), *configPath, *migrate, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "mxpp:", err)
			os.Exit(1)
		}
	case *generate:
		if err := bridge.GenerateRegistration(*configPath, *registration); err != nil {
			fmt.Fprintln(os.Stderr, "mxpp:", err)
			os.Exit(1)
		}
		fmt.Printf("Wrote %s; add it to your homeserver's appservice config files.\n", *registration)
	default:
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := bridge.Run(ctx, *configPath, Version); err != nil {
			fmt.Fprintln(os.Stderr, "mxpp:", err)
			os.Exit(1)
		}
	}
}

// privacyReport runs "mxpp privacy-report [-c config.yaml] [-json]": what
// leaves the Matrix side, who takes part, what is kept and logged, read
// from the config and the database it names.
func privacyReport(args []string) {
	fs := flag.NewFlagSet("privacy-report", flag.ExitOnError)
	configPath := fs.String("c", "config.yaml", "path to the config file")
	asJSON := fs.Bool("json", false, "write JSON instead of Markdown")
	_ = fs.Parse(args)
	if err := bridge.WritePrivacyReport(context.Background(), *configPath, *asJSON, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mxpp:", err)
		os.Exit(1)
	}
}
