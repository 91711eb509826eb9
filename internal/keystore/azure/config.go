package azure

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Retry settings of every Key Vault call. Upstream uses 7 retries with
// 200–800 ms delays; the delay cap here is longer because the SDK does not
// retry at all when a 429's Retry-After exceeds the cap, and Key Vault's
// throttling asks for seconds. The request context bounds the total.
const (
	maxRetries    = 7
	retryDelay    = 200 * time.Millisecond
	maxRetryDelay = 10 * time.Second
)

// Config is the configuration of an Azure Key Vault secrets store (spec
// config.md §9.7). At most one of Credentials and ManagedIdentityClientID
// is set; neither means Azure's DefaultAzureCredential chain. It holds a
// secret (Credentials.ClientSecret): print it only with [Config.String].
// A Config must not be modified after it has been passed to [Connect].
type Config struct {
	// Endpoint is the vault URL, "https://<vault>.vault.azure.net".
	// Required.
	Endpoint string

	// Credentials is a service principal. A zero value means none;
	// otherwise all three fields are set.
	Credentials Credentials

	// ManagedIdentityClientID selects a managed identity. Empty means none.
	ManagedIdentityClientID string

	// AuthorityHost is the Microsoft Entra authority that issues tokens,
	// e.g. "https://login.microsoftonline.us/". Empty means the public
	// cloud (https://login.microsoftonline.com/). When set, instance
	// discovery is disabled: the authority is trusted as given. Upstream's
	// config file has no such field; tests point it at a fake.
	AuthorityHost string

	// Transport sends every request of the store: Key Vault, Microsoft
	// Entra and the status probe. Nil means the SDK's default client (TLS
	// 1.2 or later, system roots). Tests set it to reach an in-process
	// server; upstream's config file has no such field.
	Transport *http.Client
}

// Credentials is a service principal of [Config]: client credentials of an
// app registration in the tenant.
type Credentials struct {
	TenantID, ClientID, ClientSecret string
}

// String returns "Azure KeyVault: <endpoint>", the banner line, so that
// printing a Config never prints the client secret.
func (c *Config) String() string { return "Azure KeyVault: " + c.Endpoint }

// validate checks c and returns the parsed endpoint.
func (c *Config) validate() (*url.URL, error) {
	if c.Endpoint == "" {
		return nil, errors.New("azure: no endpoint specified")
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || u.Host == "" || u.Scheme != "https" {
		// The SDK sends tokens over TLS only.
		return nil, fmt.Errorf("azure: invalid endpoint %q: want https://<vault>.vault.azure.net", c.Endpoint)
	}
	creds := c.Credentials != Credentials{}
	if creds && c.ManagedIdentityClientID != "" {
		return nil, errors.New("azure: only one of credentials and managed identity may be specified")
	}
	if creds && (c.Credentials.TenantID == "" || c.Credentials.ClientID == "" || c.Credentials.ClientSecret == "") {
		return nil, errors.New("azure: credentials need a tenant ID, a client ID and a client secret")
	}
	return u, nil
}

// clientOptions are the azcore options shared by the credential and the
// secrets client.
func (c *Config) clientOptions() azcore.ClientOptions {
	o := azcore.ClientOptions{
		Retry: policy.RetryOptions{MaxRetries: maxRetries, RetryDelay: retryDelay, MaxRetryDelay: maxRetryDelay},
	}
	if c.Transport != nil {
		o.Transport = c.Transport
	}
	if c.AuthorityHost != "" {
		o.Cloud = cloud.AzurePublic
		o.Cloud.ActiveDirectoryAuthorityHost = c.AuthorityHost
	}
	return o
}

// credential returns the token credential c selects.
func (c *Config) credential() (azcore.TokenCredential, error) {
	opts := c.clientOptions()
	custom := c.AuthorityHost != ""
	switch {
	case c.Credentials != Credentials{}:
		cred, err := azidentity.NewClientSecretCredential(c.Credentials.TenantID, c.Credentials.ClientID, c.Credentials.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: custom})
		if err != nil {
			return nil, fmt.Errorf("azure: client credentials: %w", err)
		}
		return cred, nil
	case c.ManagedIdentityClientID != "":
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: opts, ID: azidentity.ClientID(c.ManagedIdentityClientID),
		})
		if err != nil {
			return nil, fmt.Errorf("azure: managed identity: %w", err)
		}
		return cred, nil
	default:
		cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: opts, DisableInstanceDiscovery: custom,
		})
		if err != nil {
			return nil, fmt.Errorf("azure: default credential: %w", err)
		}
		return cred, nil
	}
}
