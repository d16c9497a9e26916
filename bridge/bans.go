package bridge

import (
	"context"
	"slices"
	"strings"
)

// keyBannedJIDs stores the bare JIDs banned from the whole bridge.
const keyBannedJIDs = "banned_jids"

// loadBans reads the bridge-wide ban list.
func (b *Bridge) loadBans(ctx context.Context) error {
	v, err := b.DB.GetValue(ctx, keyBannedJIDs)
	if err != nil {
		return err
	}
	b.bansMu.Lock()
	b.bans = strings.Fields(v)
	b.bansMu.Unlock()
	return nil
}

// isBanned reports whether a bare JID is banned from the bridge.
func (b *Bridge) isBanned(bare string) bool {
	b.bansMu.Lock()
	defer b.bansMu.Unlock()
	return slices.Contains(b.bans, bare)
}

// setBanned adds a bare JID to, or removes it from, the ban list.
func (b *Bridge) setBanned(ctx context.Context, bare string, banned bool) error {
	b.bansMu.Lock()
	defer b.bansMu.Unlock()
	i := slices.Index(b.bans, bare)
	switch {
	case banned && i < 0:
		b.bans = append(b.bans, bare)
	case !banned && i >= 0:
		b.bans = slices.Delete(b.bans, i, i+1)
	default:
		return nil
	}
	return b.DB.SetValue(ctx, keyBannedJIDs, strings.Join(b.bans, " "))
}
