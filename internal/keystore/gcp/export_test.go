package gcp

import "crypto/x509"

// SetTestOnlyRootCAs makes c trust the CAs of pool (instead of the system
// roots) for the API endpoint and the status probe.
func SetTestOnlyRootCAs(c *Config, pool *x509.CertPool) { c.testOnlyRootCAs = pool }
