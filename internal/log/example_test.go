package log_test

import (
	"fmt"
	"log/slog"

	"github.com/openkes/kes/internal/log"
)

func ExampleParseLevel() {
	for _, s := range []string{"", "on", "off", "warn", "ERROR+1", "-4"} {
		level, err := log.ParseLevel(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%q: %v, audit enabled: %v\n", s, level, level <= slog.LevelInfo)
	}
	// Output:
	// "": INFO, audit enabled: true
	// "on": INFO, audit enabled: true
	// "off": ERROR+1, audit enabled: false
	// "warn": WARN, audit enabled: false
	// "ERROR+1": ERROR+1, audit enabled: false
	// "-4": DEBUG, audit enabled: true
}
