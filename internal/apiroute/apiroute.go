// Package apiroute holds the one fact about API routes that the configuration
// file and the server share: the settings of a route the file may change.
// The routes themselves (paths, limits, handlers) are the server's route
// table (internal/api); the configuration gets their paths from it.
//
// This package is a leaf: it imports only the standard library.
package apiroute

import "time"

// Config holds the settings of one API route (config file `api:`,
// config.md §6). The zero value keeps the route's defaults.
type Config struct {
	// SkipAuth makes the route public: the identity is computed when a
	// certificate is present, but no policy is checked. It only affects
	// routes that check a policy: it is ignored for /version, for
	// self-describe and for the routes that change policies and
	// assignments.
	SkipAuth bool

	// Timeout replaces the route's default timeout when > 0.
	Timeout time.Duration
}
