package bridge

import (
	"context"
	"fmt"
)

// GenerateRegistration writes the appservice registration for the
// homeserver, generating the tokens into the config first if it has none.
func GenerateRegistration(configPath, registrationPath string) error {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	if err = cfg.Validate(true); err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	if cfg.GenerateTokens() {
		if err = WriteTokens(configPath, cfg); err != nil {
			return fmt.Errorf("failed to store generated tokens in %s: %w", configPath, err)
		}
	}
	if err = cfg.MatrixConfig().Registration().Save(registrationPath); err != nil {
		return fmt.Errorf("failed to write registration: %w", err)
	}
	return nil
}

// Run loads and checks the config, then runs the bridge until ctx ends.
func Run(ctx context.Context, configPath, version string) error {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	if err = cfg.Validate(false); err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	b, err := New(cfg, NewLogger(cfg.Logging))
	if err != nil {
		return err
	}
	b.Version = version
	if err = b.Start(ctx); err != nil {
		b.Stop()
		return err
	}
	select {
	case <-ctx.Done():
		b.Log.Info().Msg("Shutting down")
	case err = <-b.Failed():
		b.Log.Error().Err(err).Msg("Shutting down")
	}
	b.Stop()
	return err
}
