// Command kesload measures the server CPU time that OpenKES spends per
// generate and per decrypt request, next to a bare net/http TLS server that
// does the least work a server of that route can do: it reads the request
// body and writes a fixed JSON reply of the same size as the KES reply.
// The ratio of the two is the overhead of KES itself (routing, auth, JSON,
// crypto, audit log) on top of Go's TLS and HTTP stack.
//
// Usage:
//
//	go run ./internal/tools/kesload run              # builds ./cmd/kes, defaults below
//	go run ./internal/tools/kesload run -kes ./kes -n 20000 -rounds 3 -audit both
//	go test ./internal/tools/kesload -run '^$' -bench ServerCPU -benchtime 5000x
//
// "kesload run" starts the servers as child processes on 127.0.0.1: one kes
// server per audit mode (-audit: "file" sends its stdout, and so its audit
// log, to a file; "null" to /dev/null; "both" starts one of each) with an fs
// key store, and a bare server ("kesload bare", a re-exec of the running
// binary). It creates the key "bench", generates a data key, decrypts it
// (checking the plaintext), warms up, and then, for each protocol and each
// operation, sends -n requests from -clients concurrent workers to each
// server in turn:
//
//   - HTTP/1.1: every worker has its own keep-alive connection.
//   - HTTP/2: all workers share one connection, as MinIO does.
//
// The generate body is {"context":"<base64 of 40 bytes>"}; the decrypt body
// is {"ciphertext":...,"context":...} with a ciphertext that server made.
// Every reply must be 200 with the expected body size, or the run fails.
// The servers' order alternates between rounds, and the whole sequence is
// repeated -rounds times.
//
// Server CPU time is read from /proc before and after each run: the sum of
// the on-CPU time of the server's threads (/proc/PID/task/*/schedstat, in
// nanoseconds), or utime+stime of /proc/PID/stat (10 ms ticks) where
// schedstat is missing. Both are read; a run where they disagree by more
// than a few ticks is flagged. Only the server's CPU counts: the load
// generator runs in this process and does not disturb the figure much even
// on a busy machine, though a crowded machine still shifts it.
//
// Reading the output: one line per protocol, operation and kes variant,
//
//	protocol  op        kes audit  kes µs/req  bare µs/req  ratio  target      kes req/s  bare req/s
//	HTTP/2    generate  file       61.3        44.0         1.39   ≤1.10  MISS ...
//
// µs/req is the server CPU time divided by the number of requests (median
// of the rounds); ratio is the median over rounds of kes/bare, each pair
// measured back to back; req/s is what the clients observed (wall clock,
// median), which depends on the client and the machine far more than on the
// server. The targets are those of issue 12, on both protocols: at most
// 1.05x with the audit log off (audit modes off, and null, whose events
// nobody reads) and 1.10x with audit to a file (file, sink); syslog has
// none ("none").
//
// A second table gives the latency the clients saw, per protocol,
// operation and server, bare included: p50 and p99 (nearest rank) of every
// request of a measured run, from just before it was sent to the end of
// its reply, in ms and the median of the rounds; and for a kes server
// p99/bare, the median over the rounds of its p99 divided by the bare
// server's in the same round, with issue 12's target (≤ 1.10). Each
// request's latency goes into a slot of a slice allocated before the run
// (the slot is the request's number, handed out by the counter the workers
// already share), so recording takes no lock and no allocation while the
// server's CPU is measured; the slice is sorted after the CPU is read.
// Latency at 32 clients is mostly queueing: it tells how evenly a server
// serves its clients, and on a busy machine it swings more than the CPU
// figure.
//
// Below the tables, VmRSS of each kes server after start, one request and
// a short settle ("idle", target < 25 MiB, from issue 2; issue 12 sets
// none), and after the load.
//
// Only ratios measured in one run are meaningful: absolute µs/req change
// with the CPU, its frequency, the kernel and whatever else runs on the
// machine, and numbers from different runs must not be compared.
//
// The benchmark BenchmarkServerCPU builds ./cmd/kes and reports the same
// figures as custom metrics (kes-cpu-µs/op, bare-cpu-µs/op, ratio,
// p99-ratio) per
// protocol and operation; its ns/op is the wall time of both servers' runs
// and means nothing. TestLoadSmoke runs the whole driver with 200 requests.
//
// "kesload run -base OLD" measures a change in one run: every audit mode
// also runs a kes server of the binary OLD (e.g. built from main), named
// with the suffix "-base" and shown as "off, base" and so on, taking its
// turn in every round beside the new one.
//
// Setting KESLOAD_PERF=PREFIX makes "kesload run" record every server with
// "perf record -g" from the end of the warm-up to the end of the last round,
// into PREFIX.kes, PREFIX.bare and so on; -proto h1 or -proto h2 limits the
// run to one protocol. Perf sampling adds server CPU time, so take the
// table of such a run with a grain of salt. KESLOAD_KES_ENV="NAME=VALUE …"
// adds environment variables to the kes servers only (GOGC, GODEBUG).
//
// "kesload soak -d 30m" is the soak test (issue 11): it starts one kes
// server with an fs key store and its audit log on (to /dev/null), and
// drives a MinIO-like mix from -clients workers (half HTTP/1.1 with a
// connection each, half HTTP/2 on one shared connection) at -rate requests
// per second: generate and decrypt (44 % each, every decrypt checked
// against the generated plaintext), describe (6 %), list (2 %), and
// create (4 %, each worker deleting its oldest key once it holds four, so
// the number of keys stays bounded). Every second it samples the server's
// VmRSS and open file descriptors (/proc/PID) and its goroutines
// (kes_system_num_threads of /v1/metrics). After the load it closes every
// connection and waits for the server to return to idle. It fails unless
// no request failed, the goroutines are back to idle (+5) and the file
// descriptors to their idle count, and the median RSS of the second half
// of the run (after a warm-up of a third of it, at most 15 s) exceeds that
// of the first half by no more than 10 % (or 4 MiB). TestSoak runs it for
// $OPENKES_SOAK (scripts/test.sh sets 60s; 15s when unset).
//
// "kesload pairs [-clients 32] [-d 10s] [-rounds 3] [-retention D] [kes ...]" measures
// key creation (issue 12): one kes server per binary named (./cmd/kes,
// built, if none), each with its own empty fs key store, and -clients
// workers that each create a new key and delete it again, as fast as they
// can, for -d per server and round; the servers take turns, in alternating
// order. It prints per server the median over the rounds of the pairs per
// second, of its ratio to the first server's in the same round, of the
// p50 and p99 latency of a pair and of the server's CPU time per pair.
// Name a binary built from main and one from a branch (or an upstream
// binary) to get their ratio from one run; see BENCHMARKS.md. -retention
// writes key_deletion.retention into the servers' config ("0": a delete
// removes the key at once, as upstream; unset: the default soft deletion).
//
// "kesload pairs -store vault" runs the same on a real Vault: it starts a
// Vault dev server (the binary of -vault-bin or $OPENKES_VAULT_BIN, which
// scripts/install-vault.sh builds and prints; in-memory storage, plain
// HTTP on a free 127.0.0.1 port, a random root token), mounts a K/V engine
// (-vault-kv v2, or v1) per kes server and one more, and makes an AppRole
// whose tokens may use them (the policy KES's docs ask for); each kes
// server logs in with it and stores its keys on its own mount. One more
// row, "vault-api", takes its turn in every round: Vault's Go API client,
// logged in with the same AppRole, -clients workers each writing a new
// secret shaped as a KES key record (check-and-set 0 on v2, so only a new
// secret is written) and deleting it, over kept-alive connections. That is
// the least any KES must ask of that Vault per pair, so its rate bounds
// what any KES can reach there; the column "of vault-api" is each kes
// server's pairs/s divided by vault-api's in the same round (median), and
// "vault cpu µs/pair" is Vault's CPU time per pair of each row. Vault is
// stopped when the measurement ends. No VAULT_* variable of kesload's
// environment reaches Vault or the kes servers.
//
// kesload is Linux only (/proc), talks to 127.0.0.1 only, bounds every loop
// by a count and a deadline, and kills its children when it returns; they
// also get SIGKILL if it dies (PR_SET_PDEATHSIG).
//
// It imports the SDK (github.com/openkes/kes) for API keys and certificates,
// Vault's Go API client for -store vault, and nothing of the server: the
// server is measured as the built binary.
package main
