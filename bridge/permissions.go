package bridge

import (
	"maunium.net/go/mautrix/id"
)

// Permission levels of Matrix users (bridge.permissions).
const (
	LevelNone  = "none"
	LevelUser  = "user"
	LevelAdmin = "admin"
)

var levels = map[string]int{LevelNone: 0, LevelUser: 1, LevelAdmin: 2}

// levelOf returns a Matrix user's permission level: the entry for the user
// ID, else for its server, else "*", else none.
func (c *Config) levelOf(userID id.UserID) string {
	if l, ok := c.Bridge.Permissions[string(userID)]; ok {
		return l
	}
	if l, ok := c.Bridge.Permissions[userID.Homeserver()]; ok {
		return l
	}
	if l, ok := c.Bridge.Permissions["*"]; ok {
		return l
	}
	return LevelNone
}

// hasLevel reports whether a user has at least a level.
func (c *Config) hasLevel(userID id.UserID, level string) bool {
	return levels[c.levelOf(userID)] >= levels[level]
}
