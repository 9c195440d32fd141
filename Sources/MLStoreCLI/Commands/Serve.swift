import ArgumentParser
import Foundation
import MLStoreBasics
import MLStoreCore
import MLStoreServer
import Synchronization

extension MLStoreCommand {
    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve", abstract: "Serve a store over HTTP: a remote for push, fetch and clone, and a web UI.",
            discussion: """
                One process is both an HTTP remote (`mlstore remote add origin http://HOST:PORT`; uploads are verified \
                object by object and published whole, refs move by compare-and-swap) and a web UI: runs with filters \
                and sorting, run pages, metric charts, lineage, the registry with every stage's history, downloads.

                Access: a tokens file lists `<token> <read|write> [name]` per line; clients send the token as \
                `Authorization: Bearer` (mlstore takes it from MLSTORE_TOKEN or `mlstore remote set-token`), browsers sign \
                in at /login. Anonymous read needs --anonymous-read (a local UI: `mlstore serve --anonymous-read`); \
                without it and without --tokens the server does not start. Writes always need a write token. Stop with Ctrl-C or SIGTERM \
                (requests in flight finish). The HTTP API is in spec/http.md and spec/openapi.yaml.
                """)
        @Option(help: "Port to listen on (0: any free port; the first line printed names it).") var port = 8470
        @Option(help: "Address to listen on. Anything but loopback exposes the store to the network.") var host = "127.0.0.1"
        @Option(help: "The store to serve: a workspace or a bare store (default: the current workspace).") var store: String?
        @Option(help: "Tokens file: `<token> <read|write> [name]` per line.") var tokens: String?
        @Flag(help: "Allow reads (UI, fetch, clone) without a token.") var anonymousRead = false
        @Option(help: "Largest request body, e.g. one uploaded pack (K, M, G, T).") var maxBody = "4G"
        @Flag(help: "Do not log requests to stderr.") var quiet = false

        func run() throws {
            guard (0...65535).contains(port) else { throw MLStoreError(.usage, "--port must be 0…65535 (0: any free port)") }
            let root: String
            if let store {
                root = Path.absolute(store, base: Sys.currentDirectory())
            } else {
                let repo = try Repository.discover(from: Sys.currentDirectory())
                root = repo.workspaceRoot ?? repo.storeDirectory
            }
            var options = ServeOptions(storePath: root)
            options.host = host
            options.port = port
            options.tokensFile = tokens.map { Path.absolute($0, base: Sys.currentDirectory()) }
            options.anonymousRead = anonymousRead
            options.maxBodyBytes = try SizeArgument.parse(maxBody)
            options.logRequests = !quiet
            let server = try StoreServer(options: options)
            var notes: [String] = []
            if tokens == nil {
                guard anonymousRead else {
                    throw MLStoreError(.usage, "without --tokens or --anonymous-read nobody could read or write",
                                       hint: "browse and clone without tokens: `mlstore serve --anonymous-read`; allow pushes: --tokens FILE (lines `<token> <read|write> [name]`)")
                }
                notes.append("anonymous read-only access; pushing needs --tokens FILE")
            }
            if anonymousRead && !["127.0.0.1", "::1", "localhost"].contains(host) {
                notes.append("anyone who can reach \(host):\(port) can read this store (--anonymous-read)")
            }
            let shownNotes = notes
            let host = self.host
            let done = DispatchSemaphore(value: 0)
            let failure = Mutex<Error?>(nil)
            let summary = "store \(server.repo.storeDirectory)" + (options.anonymousRead ? ", anonymous read on" : "")
                + (options.tokensFile != nil ? ", tokens from \(options.tokensFile!)" : "")
            Task {
                do {
                    try await server.run { port in
                        let shown = host.contains(":") ? "[\(host)]" : host
                        FileHandle.standardOutput.write(Data("listening on http://\(shown):\(port)\n".utf8))
                        Terminal.note(summary)
                        for n in shownNotes { Terminal.note(n) }
                    }
                } catch {
                    failure.withLock { $0 = error }
                }
                done.signal()
            }
            done.wait()
            if let e = failure.withLock({ $0 }) {
                let text = "\(e)"
                if text.contains("Address already in use") {
                    throw MLStoreError(.io, "cannot listen on \(host):\(port): the address is already in use",
                                       hint: "stop the other server, or pick another port (--port 0 picks a free one)")
                }
                throw MLStoreError(.io, "the server stopped: \(text)", hint: "check --host and --port")
            }
        }
    }
}
