package kes

import (
	"context"
	"time"
)

// Test-only hooks: tests never sleep and control the clock of parking.

func SetSleep(c *Client, f func(ctx context.Context, d time.Duration) error) { c.sleep = f }

func SetNow(c *Client, now func() time.Time) { c.lb.now = now }

var ParseMetrics = parseMetrics
