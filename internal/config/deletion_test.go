package config_test

import (
	"slices"
	"testing"
	"time"

	"github.com/openkes/kes/internal/config"
)

func TestKeyDeletion(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    time.Duration
		protect []string
	}{
		{"absent", valid(), config.DefaultRetention, nil},
		{"empty-section", valid("key_deletion:"), config.DefaultRetention, nil},
		{"retention", valid("key_deletion:", "  retention: 72h"), 72 * time.Hour, nil},
		{"zero", valid("key_deletion:", "  retention: 0"), 0, nil},
		{"off", valid("key_deletion:", "  retention: off"), 0, nil},
		{"off-upper", valid("key_deletion:", "  retention: OFF"), 0, nil},
		{"empty-value", valid("key_deletion:", "  retention:"), 0, nil},
		{"env", valid("key_deletion:", "  retention: ${KES_TEST_RETENTION}"), time.Hour, nil},
		{"protect", valid("key_deletion:", "  protect:", "  - minio-*", "  - root-key", "  - '*'"), config.DefaultRetention,
			[]string{"minio-*", "root-key", "*"}},
	}
	t.Setenv("KES_TEST_RETENTION", "1h")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.Parse([]byte(tt.yaml), "kes.yml", schema)
			if err != nil {
				t.Fatal(err)
			}
			if f.KeyDeletion.Retention != tt.want || !slices.Equal(f.KeyDeletion.Protect, tt.protect) {
				t.Errorf("KeyDeletion = %+v, want retention %v, protect %q", f.KeyDeletion, tt.want, tt.protect)
			}
		})
	}
}

func TestKeyDeletionErrors(t *testing.T) {
	runErrorTests(t, []errorTest{
		{"negative", valid("key_deletion:", "  retention: -1h"), 10, "kesconf: invalid key deletion retention '-1h0m0s'", nil},
		{"not-a-duration", valid("key_deletion:", "  retention: week"), 10,
			"kesconf: invalid value for 'key_deletion.retention': expected a duration such as 15s or 5m, found 'week'", nil},
		{"unknown-key", valid("key_deletion:", "  period: 1h"), 10, "kesconf: unknown key 'key_deletion.period'", nil},
		{"protect-not-list", valid("key_deletion:", "  protect: minio-*"), 10,
			"kesconf: invalid value for 'key_deletion.protect': expected a sequence, found a scalar", nil},
		{"protect-invalid", valid("key_deletion:", "  protect:", "  - ok", "  - a/b"), 12,
			"kesconf: invalid key deletion protect pattern 'a/b': want a key name or a prefix ending in '*'", nil},
		{"protect-empty", valid("key_deletion:", "  protect:", "  - ''"), 11,
			"kesconf: invalid key deletion protect pattern '': want a key name or a prefix ending in '*'", nil},
		{"protect-tombstone", valid("key_deletion:", "  protect:", "  - -dkey-*"), 11,
			"kesconf: invalid key deletion protect pattern '-dkey-*': want a key name or a prefix ending in '*'", nil},
	})
}
