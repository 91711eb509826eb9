package kmiptest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/kmiptest"
)

// TestStart: the server starts, listens and logs its connection service.
func TestStart(t *testing.T) {
	start := time.Now()
	srv := kmiptest.Start(t)
	t.Logf("pykmip-server listening after %v", time.Since(start))
	if !strings.Contains(srv.Log(), "Starting connection service") {
		t.Fatalf("log does not show the connection service:\n%s", srv.Log())
	}
	srv.Stop()
	srv.Stop() // a second Stop does nothing
}
