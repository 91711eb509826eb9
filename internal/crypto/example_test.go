package crypto_test

import (
	"fmt"
	"time"

	"github.com/openkes/kes/internal/crypto"
)

func ExampleParseKey() {
	// The stored record of spec crypto.md §9.4.
	stored := []byte("CiQKIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fEAESJAogICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8QARoGCICByKwGIkBhMDUwODM3ZDg1MDcwNTgyY2NmNzM5NGIwOTg4ODQ3Y2MzMTJjYjg4MjU5Yjg5NDg5OWY2ZjIzOWNmMTc5MWE1")
	k, err := crypto.ParseKey(stored)
	if err != nil {
		panic(err)
	}
	fmt.Println(k.Secret.Type(), k.CreatedAt.Format(time.RFC3339), k.HMAC != nil)
	// Output: AES256 2024-01-01T00:00:00Z true
}

func ExampleSecretKey_Encrypt() {
	k, err := crypto.GenerateSecretKey(crypto.AES256, nil)
	if err != nil {
		panic(err)
	}
	dataKey := make([]byte, 32)
	ciphertext, err := k.Encrypt(dataKey, []byte("bucket/object"))
	if err != nil {
		panic(err)
	}
	plaintext, err := k.Decrypt(ciphertext, []byte("bucket/object"))
	if err != nil {
		panic(err)
	}
	fmt.Println(len(ciphertext), len(plaintext))
	// Output: 76 32
}
