import Foundation
import MLStoreBasics
import Testing

@testable import MLStoreCore

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Fixture: a store served by `mlstore serve`

/// A bare store served by `mlstore serve --port 0 --quiet` (a child process). The first stdout line names the
/// port. ``stop(_:)`` sends SIGTERM (or another signal) and expects a clean exit 0.
final class ServedStore {
    static let writeToken = "write-token-0123456789abcdef"
    static let readToken = "read-token-0123456789abcdef"
    static let unknownToken = "unknown-token-0123456789abcdef"

    let tmp: TempDir
    /// The bare store the server serves.
    let store: String
    let process: CLI.Running
    let url: String
    let port: Int
    private var stopped = false

    /// - Parameters:
    ///   - tokens: write a tokens file (alice: write, bob: read) and pass `--tokens`.
    ///   - anonymousRead: pass `--anonymous-read`.
    ///   - maxBody: `--max-body`.
    init(tokens: Bool = true, anonymousRead: Bool = false, maxBody: String? = nil,
         sourceLocation: SourceLocation = #_sourceLocation) throws {
        tmp = try TempDir(prefix: "mlstore-http")
        store = tmp.path + "/server.mlstore"
        let bin = try CLI.requireBinary()
        let initOut = try CLI.run(bin, ["init", "--bare", store], in: tmp.path)
        try #require(initOut.status == 0, "init --bare: \(initOut)", sourceLocation: sourceLocation)
        var args = ["serve", "--store", store, "--port", "0", "--quiet"]
        if tokens {
            let file = tmp.path + "/tokens"
            try FS.write(file, """
                # token                      scope  name
                \(Self.writeToken) write alice
                \(Self.readToken)  read  bob
                """, mode: 0o600)
            args += ["--tokens", file]
        }
        if anonymousRead { args.append("--anonymous-read") }
        if let maxBody { args += ["--max-body", maxBody] }
        process = try CLI.Running(executable: bin, args: args, cwd: tmp.path, outDir: tmp.path, tag: "serve", env: [:])
        // Poll stdout for the `listening on` line (20 s at most).
        let deadline = Date().addingTimeInterval(20)
        var listening: String?
        while Date() < deadline {
            if let text = FS.readText(process.outPath),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://") })
            {
                listening = String(line.dropFirst("listening on ".count))
                break
            }
            if !process.process.isRunning { break }
            usleep(10_000)
        }
        guard let listening, let colon = listening.lastIndex(of: ":"), let p = Int(listening[listening.index(after: colon)...]) else {
            if process.process.isRunning { kill(process.process.processIdentifier, SIGKILL) }
            let out = process.wait()
            tmp.remove()
            throw TestFailure("mlstore serve did not print `listening on` within 20 s: \(out)")
        }
        url = listening
        port = p
    }

    deinit {
        if process.process.isRunning {
            kill(process.process.processIdentifier, SIGKILL)
            process.process.waitUntilExit()
        }
        tmp.remove()
    }

    var api: String { url + "/api/v1" }
    var stderr: String { FS.readText(process.errPath) ?? "" }

    /// Sends `sig` and waits (10 s at most) for the process to end; expects exit status 0.
    @discardableResult
    func stop(_ sig: Int32 = SIGTERM, sourceLocation: SourceLocation = #_sourceLocation) -> CLI.Output? {
        guard !stopped else { return nil }
        stopped = true
        let pid = process.process.processIdentifier
        kill(pid, sig)
        let deadline = Date().addingTimeInterval(10)
        while process.process.isRunning && Date() < deadline { usleep(10_000) }
        let inTime = !process.process.isRunning
        #expect(inTime, "mlstore serve did not stop within 10 s of signal \(sig)", sourceLocation: sourceLocation)
        if !inTime { kill(pid, SIGKILL) }
        let out = process.wait()
        #expect(process.process.terminationReason == .exit && out.status == 0,
                "mlstore serve should exit 0 on signal \(sig): \(out)", sourceLocation: sourceLocation)
        return out
    }

    // MARK: Inspecting the served store directly

    /// Every file under `objects/` (packs, indexes, loose objects, temp files), relative paths.
    func objectFiles() -> [String] { FS.listFiles(store + "/objects") }

    /// Every ref file under `refs/` with its content.
    func refFiles() -> [String: String] {
        var out: [String: String] = [:]
        for rel in FS.listFiles(store + "/refs") { out[rel] = FS.readText(store + "/refs/" + rel) ?? "?" }
        return out
    }

    /// Files and refs, for "nothing was stored" checks.
    struct State: Equatable, CustomStringConvertible {
        var objects: [String]
        var refs: [String: String]
        var description: String { "objects: \(objects)\nrefs: \(refs)" }
    }
    func state() -> State { State(objects: objectFiles(), refs: refFiles()) }

    /// Temp files an upload left in the pack directory.
    func tempPacks() -> [String] { objectFiles().filter { $0.contains("tmp-") || $0.contains(".tmp") } }

    /// Lease files held in the store (push leases the server holds for clients).
    func leaseFiles() -> [String] { FS.listFiles(store + "/leases") }

    /// `mlstore -C <store> fsck` on the served store itself.
    func fsck() throws -> CLI.Output { try CLI.mlstore(["-C", store, "fsck"], in: tmp.path) }

    /// Whether the server still answers `GET /info`.
    func answers() -> Bool { (try? HTTP.send("GET", api + "/info"))?.status == 200 }
}

// MARK: - Raw HTTP

/// One HTTP response.
struct HTTPReply: CustomStringConvertible {
    var status: Int
    /// Lower-cased names.
    var headers: [String: String]
    var body: Data
    func header(_ name: String) -> String? { headers[name.lowercased()] }
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
    var description: String { "HTTP \(status) \(headers) \(text.prefix(600))" }
}

/// A tiny synchronous HTTP client over URLSession (and a raw-socket one for requests URLSession would
/// normalise or cannot cut short).
enum HTTP {
    private final class Box: @unchecked Sendable {
        var reply: HTTPReply?
        var error: Error?
    }

    static func send(_ method: String, _ url: String, token: String? = nil, body: Data? = nil,
                     headers: [String: String] = [:], timeout: Double = 60) throws -> HTTPReply {
        guard let u = URL(string: url) else { throw TestFailure("bad URL \(url)") }
        var req = URLRequest(url: u, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        req.httpMethod = method
        if let token { req.setValue("Bearer " + token, forHTTPHeaderField: "Authorization") }
        for (k, v) in headers { req.setValue(v, forHTTPHeaderField: k) }
        req.httpBody = body
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = timeout
        config.httpCookieStorage = nil
        let session = URLSession(configuration: config)
        defer { session.finishTasksAndInvalidate() }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        session.dataTask(with: req) { data, response, error in
            if let http = response as? HTTPURLResponse {
                var h: [String: String] = [:]
                for (k, v) in http.allHeaderFields { h[String(describing: k).lowercased()] = String(describing: v) }
                box.reply = HTTPReply(status: http.statusCode, headers: h, body: data ?? Data())
            } else {
                box.error = error ?? TestFailure("no HTTP response for \(method) \(url)")
            }
            done.signal()
        }.resume()
        done.wait()
        if let r = box.reply { return r }
        throw box.error ?? TestFailure("no response")
    }

    static func get(_ url: String, token: String? = nil) throws -> HTTPReply { try send("GET", url, token: token) }

    static func post(_ url: String, token: String?, body: Data, contentType: String) throws -> HTTPReply {
        try send("POST", url, token: token, body: body, headers: ["Content-Type": contentType])
    }

    /// Sends bytes over a fresh TCP connection to 127.0.0.1:`port`, half-closes it, and returns everything the
    /// server sent until it closed (or `timeout` seconds passed).
    static func raw(port: Int, _ bytes: [UInt8], timeout: Int = 10) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TestFailure("connect: errno \(errno)") }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the server may close early; what it answered is still readable
            sent += n
        }
        shutdown(fd, Int32(SHUT_WR))
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The status code of a raw response ("HTTP/1.1 404 Not Found" → 404), nil if none arrived.
    static func status(ofRaw text: String) -> Int? {
        guard text.hasPrefix("HTTP/") else { return nil }
        let parts = text.split(separator: " ", maxSplits: 2)
        return parts.count >= 2 ? Int(parts[1]) : nil
    }
}

// MARK: - Workspaces that talk to the server

/// Workspaces in one temp dir whose `origin` is a served store.
private struct HTTPTeam {
    let tmp: TempDir
    let server: ServedStore

    init(_ server: ServedStore) throws {
        self.server = server
        tmp = try TempDir(prefix: "mlstore-http-team")
    }
    func remove() { tmp.remove() }
    func dir(_ name: String) -> String { tmp.path + "/" + name }

    /// Author identity plus the token (`nil`: none — an inherited MLSTORE_TOKEN is blanked).
    static func env(_ token: String?) -> [String: String] {
        ["MLSTORE_AUTHOR_NAME": "Tester", "MLSTORE_AUTHOR_EMAIL": "t@example.com", "MLSTORE_TOKEN": token ?? ""]
    }

    @discardableResult
    func run(_ args: [String], in name: String, token: String? = ServedStore.writeToken) throws -> CLI.Output {
        try CLI.mlstore(args, in: dir(name), env: Self.env(token))
    }

    @discardableResult
    func ok(_ args: String..., in name: String, token: String? = ServedStore.writeToken,
            sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try run(args, in: name, token: token)
        try #require(r.status == 0, "mlstore \(args.joined(separator: " ")) in \(name): \(r)", sourceLocation: sourceLocation)
        return r.stdout
    }

    func json(_ args: String..., in name: String, token: String? = ServedStore.writeToken,
              sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let r = try run(args + ["--json"], in: name, token: token)
        try #require(r.status == 0, "mlstore \(args.joined(separator: " ")) --json in \(name): \(r)", sourceLocation: sourceLocation)
        return try #require(try JSONSerialization.jsonObject(with: r.stdoutData) as? [String: Any], sourceLocation: sourceLocation)
    }

    /// A workspace whose origin is the server.
    func workspace(_ name: String) throws {
        try FS.mkdirs(dir(name))
        try ok("init", in: name)
        try ok("remote", "add", "origin", server.url, in: name)
    }

    /// A workspace with one committed file (`files`: relative path → content) on main.
    func committed(_ name: String, _ files: [String: String], message: String = "c") throws {
        try workspace(name)
        for (rel, text) in files { try FS.write(dir(name) + "/" + rel, text) }
        try ok(["add"] + files.keys.sorted(), in: name)
        try ok("commit", "-m", message, "--no-env", "--no-code", in: name)
    }

    func ok(_ args: [String], in name: String, token: String? = ServedStore.writeToken,
            sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try run(args, in: name, token: token)
        try #require(r.status == 0, "mlstore \(args.joined(separator: " ")) in \(name): \(r)", sourceLocation: sourceLocation)
    }

    func clone(_ dest: String, token: String?, extra: [String] = []) throws -> CLI.Output {
        try CLI.mlstore(["clone"] + extra + [server.url, dir(dest)], in: tmp.path, env: Self.env(token))
    }

    /// The commit id a revision resolves to.
    func commitID(_ rev: String, in name: String, token: String? = ServedStore.writeToken) throws -> String {
        try #require(try json("show", rev, in: name, token: token)["id"] as? String)
    }

    /// The objects of the commit at `rev` in workspace `name`, children first (what a push would send to an
    /// empty remote), as stored.
    func objects(of rev: String = "HEAD", in name: String) throws -> [EncodedObject] {
        let repo = try Repository.open(at: dir(name))
        let root = try #require(ObjectID(hex: try commitID(rev, in: name)))
        let order = try Repository.closure(
            roots: [root], have: { $0.map { _ in false } }, kindOf: { try repo.objects.info($0).kind },
            payloadOf: { try repo.objects.read($0).payload }, readJSON: { try? repo.json($0) })
        return try order.map { try repo.objects.readEncoded($0).object }
    }
}

/// A thread-safe counter.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}

/// 32-byte ids back to back (the body of `/objects/have` and `/objects/read`).
private func idBody(_ ids: [ObjectID]) -> Data {
    var out: [UInt8] = []
    for id in ids { id.append(to: &out) }
    return Data(out)
}

private func refUpdateBody(_ name: String, new: ObjectID?, expecting: RefExpectation) throws -> Data {
    try JSONEncoder().encode(HTTPProtocol.RefUpdate(
        name: name, new: new, expecting: expecting, actor: Signature(name: "raw", email: "raw@example.com", time: 1_700_000_000),
        message: "raw test"))
}

// MARK: - Tests

@Suite("http remote") struct HTTPRemoteTests {
    @Test("push, clone (read token), fetch and pull through http:// with byte-identical files; incremental push; fsck --remote")
    func roundTrip() throws {
        let server = try ServedStore()
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        try t.workspace("a")
        let model = FS.randomData(count: 3_000_000, seed: 11)
        try FS.write(t.dir("a/model.bin"), model)
        try FS.write(t.dir("a/small.txt"), "a small file\n")
        try FS.write(t.dir("a/data/train.csv"), String(repeating: "1,2,3\n", count: 20_000))
        try FS.write(t.dir("a/run.sh"), "#!/bin/sh\necho hi\n", mode: 0o755)
        try t.ok("add", "model.bin", "small.txt", "data", "run.sh", in: "a")
        try t.ok("commit", "-m", "v1", "--output", "model.bin", "--metric", "acc=0.9", "--no-env", "--no-code", in: "a")
        try t.ok("promote", "fraud", "HEAD", "--stage", "production", "-m", "ship", in: "a")
        try t.ok("tag", "v1", "-m", "first", in: "a")
        let first = try t.json("push", "origin", "--all", in: "a")
        let firstObjects = try #require(first["objects"] as? Int)
        #expect(firstObjects > 10, "a 3 MB file is chunked: \(first)")
        #expect((first["bytes"] as? Int ?? 0) >= 3_000_000)
        #expect(server.refFiles()["heads/main"]?.hasPrefix(try t.commitID("HEAD", in: "a")) == true)
        #expect(FS.readText(server.store + "/HEAD") == "ref: refs/heads/main\n", "the first push sets the server's default branch")

        // The served store and fsck --remote over http agree: all good.
        let serverFsck = try server.fsck()
        #expect(serverFsck.status == 0, "\(serverFsck)")
        let remoteFsck = try t.run(["fsck", "--remote", "origin"], in: "a", token: ServedStore.readToken)
        #expect(remoteFsck.status == 0, "\(remoteFsck)")

        // Clone with a read token: byte-identical files, modes, registry and tags.
        let clone = try t.clone("b", token: ServedStore.readToken)
        try #require(clone.status == 0, "\(clone)")
        let snapA = FS.snapshot(t.dir("a")), snapB = FS.snapshot(t.dir("b"))
        #expect(snapB == snapA, "clone differs: \(Set(snapA.keys).symmetricDifference(snapB.keys))")
        #expect(FS.read(t.dir("b/model.bin")) == model)
        #expect(try t.ok("show", "fraud@production", "--json", in: "b", token: ServedStore.readToken).contains("\"acc\""))
        #expect(try t.ok("tag", "--list", in: "b").contains("v1"))
        #expect(try t.ok("fsck", in: "b").contains("0 problems"))

        // A second push sends only what is new: the small file's blob, the root tree, the commit.
        try FS.write(t.dir("a/small.txt"), "a small file, changed\n")
        try t.ok("add", "small.txt", in: "a")
        try t.ok("commit", "-m", "v2", "--no-env", "--no-code", in: "a")
        let second = try t.json("push", in: "a")
        #expect(second["objects"] as? Int == 3, "only blob + tree + commit: \(second)")
        #expect((second["bytes"] as? Int ?? .max) < 10_000, "\(second)")
        let again = try t.json("push", in: "a")
        #expect(again["objects"] as? Int == 0, "\(again)")

        // fetch (read token) moves origin/main; pull brings the file.
        let v2 = try t.commitID("HEAD", in: "a")
        try t.ok("fetch", in: "b", token: ServedStore.readToken)
        #expect(try t.commitID("origin/main", in: "b", token: ServedStore.readToken) == v2)
        #expect(FS.readText(t.dir("b/small.txt")) == "a small file\n", "fetch does not touch the workspace")
        try t.ok("pull", in: "b", token: ServedStore.readToken)
        #expect(FS.readText(t.dir("b/small.txt")) == "a small file, changed\n")
        #expect(try t.commitID("HEAD", in: "b") == v2)

        // A token stored with `remote set-token` (read from stdin) is used when MLSTORE_TOKEN is unset.
        let setToken = try CLI.run("/bin/sh", ["-c", "printf '%s\\n' \"$TOK\" | \"$M\" remote set-token origin"], in: t.dir("b"),
                                   env: ["TOK": ServedStore.writeToken, "M": try CLI.requireBinary()])
        #expect(setToken.status == 0, "\(setToken)")
        try FS.write(t.dir("b/from-b.txt"), "b was here\n")
        try t.ok("add", "from-b.txt", in: "b", token: nil)
        try t.ok("commit", "-m", "v3 from b", "--no-env", "--no-code", in: "b", token: nil)
        let pushB = try t.run(["push"], in: "b", token: nil)
        #expect(pushB.status == 0, "push with the token from `remote set-token`: \(pushB)")
        // MLSTORE_TOKEN takes precedence over the stored token: a read token in the environment is refused.
        try FS.write(t.dir("b/from-b.txt"), "b was here again\n")
        try t.ok("add", "from-b.txt", in: "b", token: nil)
        try t.ok("commit", "-m", "v4 from b", "--no-env", "--no-code", in: "b", token: nil)
        let pushRead = try t.run(["push"], in: "b", token: ServedStore.readToken)
        #expect(pushRead.status == 9, "MLSTORE_TOKEN (read) overrides the stored write token: \(pushRead)")

        // a pulls b's v3.
        try t.ok("pull", in: "a")
        #expect(FS.readText(t.dir("a/from-b.txt")) == "b was here\n")

        // A diverged push over http is rejected (exit 5) and changes nothing on the server.
        try FS.write(t.dir("a/small.txt"), "diverged in a\n")
        try t.ok("add", "small.txt", in: "a")
        try t.ok("commit", "-m", "diverged", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "b", token: nil)  // b's v4 lands first
        let before = server.refFiles()
        let rejected = try t.run(["push"], in: "a")
        #expect(rejected.status == 5, "\(rejected)")
        #expect(server.refFiles() == before)
        #expect(try server.fsck().status == 0)
        #expect(server.leaseFiles().isEmpty, "every push released its lease: \(server.leaseFiles())")
    }

    @Test("token scopes: no, unknown and read tokens cannot push (exit 9) and nothing is stored; clones need read access")
    func tokenScopes() throws {
        let server = try ServedStore()
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 600_000, seed: 21))
        try FS.write(t.dir("a/f.txt"), "hello\n")
        try t.ok("add", "model.bin", "f.txt", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        let empty = server.state()

        let none = try t.run(["push"], in: "a", token: nil)
        #expect(none.status == 9, "push without a token: \(none)")
        #expect(none.stderr.contains("token"), "\(none.stderr)")
        #expect(server.state() == empty, "nothing stored after a push without a token")

        let read = try t.run(["push"], in: "a", token: ServedStore.readToken)
        #expect(read.status == 9, "push with a read token: \(read)")
        #expect(read.stderr.contains("read-only"), "the message says the token is read-only: \(read.stderr)")
        #expect(server.state() == empty)

        let unknown = try t.run(["push"], in: "a", token: ServedStore.unknownToken)
        #expect(unknown.status == 9, "push with an unknown token: \(unknown)")
        #expect(unknown.stderr.contains("did not accept"), "\(unknown.stderr)")
        #expect(server.state() == empty)
        #expect(server.leaseFiles().isEmpty)

        // A token in the URL is refused outright (tokens never go in URLs).
        let inURL = try t.run(["remote", "add", "leaky", "http://alice:\(ServedStore.writeToken)@127.0.0.1:\(server.port)"], in: "a")
        #expect(inURL.status != 0, "credentials in a remote URL must be refused: \(inURL)")

        // Clones: no token and an unknown token are refused without leaving a directory; a read token works.
        let cloneNone = try t.clone("c0", token: nil)
        #expect(cloneNone.status == 9, "\(cloneNone)")
        #expect(!FS.exists(t.dir("c0")), "a refused clone leaves no directory")
        let cloneUnknown = try t.clone("c1", token: ServedStore.unknownToken)
        #expect(cloneUnknown.status == 9, "\(cloneUnknown)")
        #expect(!FS.exists(t.dir("c1")))

        try t.ok("push", in: "a")
        let pushed = server.state()
        #expect(pushed != empty)
        let cloneRead = try t.clone("c2", token: ServedStore.readToken)
        #expect(cloneRead.status == 0, "\(cloneRead)")
        #expect(FS.read(t.dir("c2/model.bin")) == FS.read(t.dir("a/model.bin")))
        // fetch without a token from that clone: refused.
        let fetchNone = try t.run(["fetch"], in: "c2", token: nil)
        #expect(fetchNone.status == 9, "\(fetchNone)")

        // Raw: what each scope gets.
        let objects = try t.objects(in: "a")
        let stream = Data(WireFormat.packStream(objects))
        let head = try #require(ObjectID(hex: try t.commitID("HEAD", in: "a")))

        let info = try HTTP.get(server.api + "/info")
        #expect(info.status == 200 && info.json?["scope"] as? String == "none", "\(info)")
        #expect(info.json?["head"] == nil || info.json?["head"] is NSNull, "no default branch is revealed without read access: \(info)")
        #expect(try HTTP.get(server.api + "/info", token: ServedStore.readToken).json?["scope"] as? String == "read")
        #expect(try HTTP.get(server.api + "/info", token: ServedStore.writeToken).json?["scope"] as? String == "write")

        for path in ["/refs", "/fsck", "/objects/" + head.hex, "/download/" + objects[0].id.hex] {
            let r = try HTTP.get(server.api + path)
            #expect(r.status == 401, "GET \(path) without a token: \(r)")
            #expect(r.header("WWW-Authenticate")?.hasPrefix("Bearer") == true, "401 names the scheme: \(r)")
            #expect(r.json?["code"] as? String == "denied", "\(r)")
            #expect(!r.text.contains(head.hex), "a refusal reveals nothing: \(r)")
        }
        let unknownRefs = try HTTP.get(server.api + "/refs", token: ServedStore.unknownToken)
        #expect(unknownRefs.status == 401 && unknownRefs.header("WWW-Authenticate") != nil, "\(unknownRefs)")
        let basic = try HTTP.send("GET", server.api + "/refs", headers: ["Authorization": "Basic YWxpY2U6c2VjcmV0"])
        #expect(basic.status == 401, "a non-Bearer Authorization header: \(basic)")
        let lowerScheme = try HTTP.send("GET", server.api + "/refs", headers: ["Authorization": "bearer " + ServedStore.readToken])
        #expect(lowerScheme.status == 200, "`Authorization: bearer <token>`: \(lowerScheme.status)")
        let cookieWrite = try HTTP.send("POST", server.api + "/packs", body: stream,
                                        headers: ["Cookie": "mlstore_token=" + ServedStore.readToken, "Content-Type": WireFormat.packMediaType])
        #expect(cookieWrite.status == 403, "the login cookie carries the token's scope, read here: \(cookieWrite)")
        let cookieWriteToken = try HTTP.send("POST", server.api + "/packs", body: stream,
                                             headers: ["Cookie": "mlstore_token=" + ServedStore.writeToken, "Content-Type": WireFormat.packMediaType])
        #expect(cookieWriteToken.status == 403, "the browser cookie never grants writes, even for a write token (no CSRF writes): \(cookieWriteToken)")

        let before = server.state()
        let packNone = try HTTP.post(server.api + "/packs", token: nil, body: stream, contentType: WireFormat.packMediaType)
        #expect(packNone.status == 401 && packNone.header("WWW-Authenticate") != nil, "\(packNone)")
        let packRead = try HTTP.post(server.api + "/packs", token: ServedStore.readToken, body: stream, contentType: WireFormat.packMediaType)
        #expect(packRead.status == 403, "POST /packs with a read token: \(packRead)")
        #expect(packRead.json?["code"] as? String == "denied" && packRead.header("WWW-Authenticate") == nil, "\(packRead)")
        let packUnknown = try HTTP.post(server.api + "/packs", token: ServedStore.unknownToken, body: stream, contentType: WireFormat.packMediaType)
        #expect(packUnknown.status == 401, "\(packUnknown)")
        let updateX = try refUpdateBody("refs/heads/x", new: head, expecting: .any)
        for (method, path, body) in [("POST", "/refs/update", updateX), ("PUT", "/head", Data(#"{"branch":"x"}"#.utf8)), ("POST", "/leases", Data())] {
            let r = try HTTP.send(method, server.api + path, token: ServedStore.readToken, body: body, headers: ["Content-Type": "application/json"])
            #expect(r.status == 403, "\(method) \(path) with a read token: \(r)")
        }
        let refsRead = try HTTP.get(server.api + "/refs", token: ServedStore.readToken)
        #expect(refsRead.status == 200 && refsRead.text.contains(head.hex), "\(refsRead)")
        #expect(server.state() == before, "refused writes stored nothing")
        #expect(server.leaseFiles().isEmpty)
        #expect(server.answers())
    }

    @Test("--anonymous-read: anonymous clone and fetch work, anonymous push is refused; no tokens file means no writes")
    func anonymousRead() throws {
        let server = try ServedStore(anonymousRead: true)
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        try t.committed("a", ["f.txt": "one\n"])
        try t.ok("push", in: "a")
        let clone = try t.clone("b", token: nil)
        try #require(clone.status == 0, "anonymous clone: \(clone)")
        #expect(FS.readText(t.dir("b/f.txt")) == "one\n")
        let info = try HTTP.get(server.api + "/info")
        #expect(info.json?["scope"] as? String == "read", "\(info)")
        let before = server.state()
        try FS.write(t.dir("b/f.txt"), "two\n")
        try t.ok("add", "f.txt", in: "b", token: nil)
        try t.ok("commit", "-m", "anon", "--no-env", "--no-code", in: "b", token: nil)
        let push = try t.run(["push"], in: "b", token: nil)
        #expect(push.status == 9, "anonymous push: \(push)")
        let pushRead = try t.run(["push"], in: "b", token: ServedStore.readToken)
        #expect(pushRead.status == 9, "read-token push: \(pushRead)")
        let pushUnknown = try t.run(["push"], in: "b", token: ServedStore.unknownToken)
        #expect(pushUnknown.status == 9, "an unknown token is refused even where anonymous read is on: \(pushUnknown)")
        let raw = try HTTP.post(server.api + "/packs", token: nil, body: Data(WireFormat.packStream(try t.objects(in: "b"))),
                                contentType: WireFormat.packMediaType)
        #expect(raw.status == 401, "\(raw)")
        #expect(server.state() == before)
        try t.ok("fetch", in: "b", token: nil)

        // A server without a tokens file (--anonymous-read): anonymous read, and nobody can write.
        let open = try ServedStore(tokens: false, anonymousRead: true)
        defer { open.stop() }
        let t2 = try HTTPTeam(open)
        defer { t2.remove() }
        try t2.committed("a", ["f.txt": "x\n"])
        let push2 = try t2.run(["push"], in: "a", token: ServedStore.writeToken)
        #expect(push2.status == 9, "no tokens file: even a would-be write token is unknown: \(push2)")
        let push3 = try t2.run(["push"], in: "a", token: nil)
        #expect(push3.status == 9, "\(push3)")
        #expect(open.refFiles().isEmpty && !open.objectFiles().contains { $0.hasSuffix(".pack") })
    }

    @Test("six concurrent pushers through HTTP: every landed commit stays in main, none is lost")
    func concurrentPushers() throws {
        let server = try ServedStore()
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        try t.committed("seed", ["base.txt": "base\n"], message: "base")
        try t.ok("push", in: "seed")
        let n = 6, rounds = 2
        for i in 0..<n {
            let c = try t.clone("w\(i)", token: ServedStore.writeToken)
            try #require(c.status == 0, "\(c)")
        }
        // As in the directory-remote test: each pusher pushes its own branch and races the others on main; a
        // rejected push (5: moved / non-fast-forward, 8: lock held) fetches, rebuilds on the new tip, retries.
        let pusher = try CLI.racingPusher(in: t.tmp.path)
        let bin = try CLI.requireBinary()
        var procs: [CLI.Running] = []
        for i in 0..<n {
            procs.append(try CLI.Running(executable: "/bin/bash", args: [pusher, bin, "\(i)", "\(rounds)", "5 8"], cwd: t.dir("w\(i)"),
                                         outDir: t.tmp.path, tag: "p\(i)", env: HTTPTeam.env(ServedStore.writeToken)))
        }
        var landed: [String] = []
        var rejections: [String: Int] = [:]
        for (i, p) in procs.enumerated() {
            let out = p.wait()
            #expect(out.status == 0, "pusher \(i): \(out)")
            for line in out.lines {
                if line.hasPrefix("LANDED ") { landed.append(String(line.dropFirst(7))) }
                if line.hasPrefix("REJECTED") { rejections["exit " + (line.split(separator: " ").last ?? ""), default: 0] += 1 }
            }
        }
        #expect(landed.count == rounds * n, "every pusher's main commits eventually land: \(landed.count)")
        #expect(Set(landed).count == landed.count, "each landed push is a distinct commit")
        let fsck = try server.fsck()
        #expect(fsck.status == 0, "\(fsck)")
        #expect(server.tempPacks().isEmpty, "\(server.tempPacks())")
        #expect(server.leaseFiles().isEmpty, "every push released its lease: \(server.leaseFiles())")
        let c = try t.clone("check", token: ServedStore.readToken)
        try #require(c.status == 0, "\(c)")
        let history = try t.ok("log", "--oneline", "main", in: "check", token: ServedStore.readToken)
        for commit in landed { #expect(history.contains(commit), "landed commit \(commit) missing from main") }
        #expect(history.split(separator: "\n").count == rounds * n + 1, "base + every landed commit, nothing else:\n\(history)")
        for i in 0..<n {
            #expect(try t.ok("log", "--oneline", "origin/own\(i)", in: "check", token: ServedStore.readToken)
                .split(separator: "\n").count == rounds + 1)
            #expect(FS.readText(t.dir("check/main-\(i).txt")) == "w\(i) r\(rounds)\n")
        }
        #expect(server.answers())
        print("http concurrent pushers: \(landed.count) main pushes landed; rejected and retried: \(rejections)")
    }

    @Test("hostile pack uploads: corrupt, dangling, reordered, truncated or cut off → refused, nothing published")
    func hostilePacks() throws {
        let server = try ServedStore()
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        // A commit already on the server, so some children can be "on the server".
        try t.committed("base", ["base.txt": "base\n"])
        try t.ok("push", in: "base")
        // A fresh commit, never pushed: blob(s), tree, commit.
        try t.committed("a", ["f.txt": String(repeating: "fresh content for the hostile upload test\n", count: 20), "g.txt": "g\n"])
        let objects = try t.objects(in: "a")
        try #require(objects.count == 4 && objects.last?.kind == .commit, "\(objects.map(\.kind))")
        let valid = WireFormat.packStream(objects)
        let ids = objects.map(\.id)
        func haveFlags() throws -> [UInt8] {
            let r = try HTTP.post(server.api + "/objects/have", token: ServedStore.readToken, body: idBody(ids), contentType: "application/octet-stream")
            try #require(r.status == 200, "\(r)")
            return [UInt8](r.body)
        }
        func upload(_ bytes: [UInt8]) throws -> HTTPReply {
            try HTTP.post(server.api + "/packs", token: ServedStore.writeToken, body: Data(bytes), contentType: WireFormat.packMediaType)
        }
        let before = server.state()
        #expect(try haveFlags() == [0, 0, 0, 0])

        // A byte flipped in the first object's stored bytes.
        var corrupt = valid
        corrupt[PackFormat.headerSize + WireFormat.entryHeaderSize + 3] ^= 0xFF
        let r1 = try upload(corrupt)
        #expect(r1.status == 422, "corrupt payload: \(r1)")
        #expect(r1.json?["code"] as? String == "corrupt" && r1.text.contains(ids[0].hex), "the error names the object: \(r1)")
        // A byte flipped in an entry header's id.
        var badID = valid
        badID[PackFormat.headerSize + 5] ^= 0x01
        #expect(try upload(badID).status == 422)
        // A tree and commit whose file blobs are neither on the server nor earlier in the stream.
        let dangling = try upload(WireFormat.packStream(objects.filter { $0.kind != .blob }))
        #expect(dangling.status == 422, "dangling child: \(dangling)")
        #expect(dangling.text.contains("neither on the server nor earlier"), "\(dangling)")
        // Parents before children.
        let reversed = try upload(WireFormat.packStream(objects.reversed()))
        #expect(reversed.status == 422, "commit before its tree: \(reversed)")
        // Truncated at various points (inside the header, an entry, the footer), and with bytes after the footer.
        for cut in [3, PackFormat.headerSize + 10, PackFormat.headerSize + WireFormat.entryHeaderSize + 2, valid.count / 2, valid.count - 1,
                    valid.count - PackFormat.footerSize] {
            let r = try upload(Array(valid.prefix(cut)))
            #expect(r.status == 422, "truncated at \(cut) of \(valid.count): \(r)")
        }
        #expect(try upload([]).status == 422, "an empty body")
        #expect(try upload(valid + [0]).status == 422, "a byte after the footer")
        var badMagic = valid
        badMagic[0] = UInt8(ascii: "X")
        #expect(try upload(badMagic).status == 422)
        var badCount = valid
        badCount[valid.count - 33] ^= 0x01  // the footer count's low byte
        #expect(try upload(badCount).status == 422)
        var badDigest = valid
        badDigest[valid.count - 1] ^= 0x01
        #expect(try upload(badDigest).status == 422)
        let notAPack = try upload(Array("{\"hello\": \"world\"}".utf8) + [UInt8](repeating: 0x41, count: 200))
        #expect(notAPack.status == 422, "\(notAPack)")

        #expect(try haveFlags() == [0, 0, 0, 0], "nothing from a refused upload is visible")
        #expect(server.state() == before, "refused uploads left no pack, index, loose object or temp file:\n\(server.state())\nvs\n\(before)")

        // The same objects, valid: published; objects readable, no ref moved.
        let ok = try upload(valid)
        #expect(ok.status == 200, "\(ok)")
        #expect(ok.json?["objectsWritten"] as? Int == objects.count, "\(ok)")
        #expect(try haveFlags() == [1, 1, 1, 1])
        #expect(server.refFiles() == before.refs)
        #expect(server.tempPacks().isEmpty)
        // Sent again: all skipped, no second pack.
        let packsAfterFirst = server.objectFiles().filter { $0.hasSuffix(".pack") }
        let dup = try upload(valid)
        #expect(dup.status == 200 && dup.json?["objectsWritten"] as? Int == 0 && dup.json?["objectsSkipped"] as? Int == objects.count, "\(dup)")
        #expect(server.objectFiles().filter { $0.hasSuffix(".pack") } == packsAfterFirst)
        // A commit whose tree and blobs are already on the server may come alone.
        try FS.write(t.dir("a/g.txt"), "g2\n")
        try t.ok("add", "g.txt", in: "a")
        try t.ok("commit", "-m", "second", "--no-env", "--no-code", in: "a")
        let second = try t.objects(in: "a").filter { !ids.contains($0.id) }
        #expect(second.count == 3, "\(second.map(\.kind))")
        #expect(try upload(WireFormat.packStream(second)).status == 200)

        // An upload cut off mid-body (the client's connection drops): nothing stored, no temp file left.
        try t.committed("cut", ["x.bin": String(repeating: "cut off upload ", count: 30_000)])
        let cutStream = WireFormat.packStream(try t.objects(in: "cut"))
        let beforeCut = server.state()
        var req = Array("POST /api/v1/packs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(ServedStore.writeToken)\r\nContent-Type: \(WireFormat.packMediaType)\r\nContent-Length: \(cutStream.count)\r\n\r\n".utf8)
        req += cutStream.prefix(cutStream.count / 2)
        let cutReply = try HTTP.raw(port: server.port, req)
        if let status = HTTP.status(ofRaw: cutReply) { #expect(status >= 400, "\(cutReply.prefix(300))") }
        let deadline = Date().addingTimeInterval(10)
        while server.state() != beforeCut && Date() < deadline { usleep(20_000) }
        #expect(server.state() == beforeCut, "a cut-off upload stored nothing and left no temp pack: \(server.state())")
        #expect(try server.fsck().status == 0)
        #expect(server.answers(), "the server keeps serving after hostile uploads")
    }

    @Test("ref updates: missing object 404, wrong kind 400, forbidden names 400, stale CAS 409 with current; objects endpoints")
    func hostileRefs() throws {
        let server = try ServedStore()
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        try t.committed("a", ["f.txt": "one\n"])
        try t.ok("promote", "fraud", "HEAD", "--stage", "production", "-m", "ship", in: "a")
        try t.ok("push", "--all", in: "a")
        let objects = try t.objects(in: "a")
        let commit = try #require(objects.last { $0.kind == .commit }).id
        let tree = try #require(objects.first { $0.kind == .tree }).id
        let blob = try #require(objects.first { $0.kind == .blob }).id
        let stageText = try #require(server.refFiles()["stages/fraud/production"])
        let stage = try #require(ObjectID(hex: stageText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let missing = ObjectID.hash(kind: .commit, payload: Array("never stored".utf8))
        func update(_ name: String, _ new: ObjectID?, _ expecting: RefExpectation, token: String = ServedStore.writeToken) throws -> HTTPReply {
            try HTTP.post(server.api + "/refs/update", token: token, body: try refUpdateBody(name, new: new, expecting: expecting),
                          contentType: "application/json")
        }
        let before = server.refFiles()

        let r404 = try update("refs/heads/x", missing, .absent)
        #expect(r404.status == 404, "a missing object: \(r404)")
        for (name, target) in [("refs/heads/x", tree), ("refs/heads/x", blob), ("refs/tags/t", blob), ("refs/stages/m/prod", commit),
                               ("refs/models/m", commit), ("refs/runs/k", stage)] {
            let r = try update(name, target, .any)
            #expect(r.status == 400, "\(name) → \(target.short): \(r)")
        }
        for name in ["refs/remotes/x", "refs/remotes/origin/main", "HEAD", "refs/heads/../x", "refs/heads/../../format", "refs/x",
                     "refs", "refs/heads", "refs/heads/", "/refs/heads/x", "refs/heads//x", "refs/heads/x.lock", "refs/heads/.x",
                     "refs/heads/a b", "refs/heads/x\u{0}y", "logs/refs/heads/main", "format", "objects/pack/x", "../x",
                     "refs/heads/" + String(repeating: "a", count: 300)] {
            let r = try update(name, commit, .any)
            #expect(r.status == 400, "\(name.debugDescription): \(r)")
        }
        #expect(server.refFiles() == before, "no refused update moved or created a ref")
        #expect(FS.readText(server.store + "/HEAD") == "ref: refs/heads/main\n")

        // Compare-and-swap.
        let created = try update("refs/heads/raw", commit, .absent)
        #expect(created.status == 200, "\(created)")
        let again = try update("refs/heads/raw", commit, .absent)
        #expect(again.status == 409 && again.json?["current"] as? String == commit.hex, "create over an existing ref: \(again)")
        let stale = try update("refs/heads/raw", commit, .value(missing))
        #expect(stale.status == 409, "stale expect: \(stale)")
        #expect(stale.json?["current"] as? String == commit.hex, "409 carries the current value: \(stale)")
        #expect(stale.json?["code"] as? String == "conflict")
        let deleteStale = try update("refs/heads/raw", nil, .value(missing))
        #expect(deleteStale.status == 409 && server.refFiles()["heads/raw"] != nil, "\(deleteStale)")
        let deleted = try update("refs/heads/raw", nil, .value(commit))
        #expect(deleted.status == 200 && server.refFiles()["heads/raw"] == nil, "\(deleted)")
        #expect(try update("refs/tags/ok", commit, .absent).status == 200)
        #expect(try update("refs/heads/readonly", commit, .absent, token: ServedStore.readToken).status == 403)

        // Malformed bodies.
        for body in ["", "not json", "{}", #"{"name":"refs/heads/y","expect":"absent"}"#,
                     #"{"name":"refs/heads/y","new":"zz","expect":"absent","actor":{"name":"a","email":"b","time":0,"offsetMinutes":0},"message":"m"}"#,
                     #"{"name":"refs/heads/y","new":"\#(commit.hex)","expect":"sometimes","actor":{"name":"a","email":"b","time":0,"offsetMinutes":0},"message":"m"}"#] {
            let r = try HTTP.post(server.api + "/refs/update", token: ServedStore.writeToken, body: Data(body.utf8), contentType: "application/json")
            #expect(r.status == 400, "body \(body.debugDescription): \(r)")
            #expect(r.json?["code"] as? String == "usage", "errors are JSON {code,error,hint}: \(r)")
        }
        // Bodies over the fixed limits (JSON 1 MiB, id lists 200,000 ids) are refused, and the server goes on.
        let bigJSON = try HTTP.post(server.api + "/refs/update", token: ServedStore.writeToken,
                                    body: Data(("{\"name\":\"" + String(repeating: "a", count: 2 << 20) + "\"}").utf8), contentType: "application/json")
        let bigHave = try HTTP.post(server.api + "/objects/have", token: ServedStore.readToken, body: Data(count: 32 * 210_000),
                                    contentType: "application/octet-stream")
        #expect((400..<500).contains(bigJSON.status) || bigJSON.status == 500, "\(bigJSON.status)")
        #expect(bigJSON.status == 413, "a JSON body over the 1 MiB limit: \(bigJSON)")
        #expect(bigHave.status == 413, "an id list over 200,000 ids: \(bigHave)")
        #expect(server.answers())
        // PUT /head only sets a default branch when there is none.
        let setHead = try HTTP.send("PUT", server.api + "/head", token: ServedStore.writeToken, body: Data(#"{"branch":"other"}"#.utf8),
                                    headers: ["Content-Type": "application/json"])
        #expect(setHead.status == 200 && setHead.json?["branch"] as? String == "main", "\(setHead)")
        let badHead = try HTTP.send("PUT", server.api + "/head", token: ServedStore.writeToken, body: Data(#"{"branch":"../x"}"#.utf8),
                                    headers: ["Content-Type": "application/json"])
        #expect(badHead.status == 400, "\(badHead)")

        // /objects/have and /objects/read.
        let have = try HTTP.post(server.api + "/objects/have", token: ServedStore.readToken, body: idBody([commit, missing, tree]),
                                 contentType: "application/octet-stream")
        #expect(have.status == 200 && [UInt8](have.body) == [1, 0, 1], "\(have)")
        let odd = try HTTP.post(server.api + "/objects/have", token: ServedStore.readToken, body: Data(repeating: 1, count: 33),
                                contentType: "application/octet-stream")
        #expect(odd.status == 400, "\(odd)")
        let read = try HTTP.post(server.api + "/objects/read", token: ServedStore.readToken, body: idBody([commit, tree, blob]),
                                 contentType: "application/octet-stream")
        try #require(read.status == 200, "\(read)")
        let entries = try WireFormat.parseEntries([UInt8](read.body), location: "test")
        #expect(entries.map(\.id) == [commit, tree, blob], "objects in the order asked")
        for e in entries { _ = try WireFormat.decode(e, location: "test") }  // each verifies against its id
        let readMissing = try HTTP.post(server.api + "/objects/read", token: ServedStore.readToken, body: idBody([commit, missing]),
                                        contentType: "application/octet-stream")
        #expect(readMissing.status == 404, "\(readMissing)")
        let headObj = try HTTP.send("HEAD", server.api + "/objects/" + tree.hex, token: ServedStore.readToken)
        #expect(headObj.status == 200 && headObj.header("X-MLStore-Kind") == "tree", "\(headObj)")
        #expect(try HTTP.send("HEAD", server.api + "/objects/" + missing.hex, token: ServedStore.readToken).status == 404)
        let one = try HTTP.get(server.api + "/objects/" + commit.hex, token: ServedStore.readToken)
        #expect(one.status == 200)
        let oneEntries = try WireFormat.parseEntries([UInt8](one.body), location: "t")
        #expect(oneEntries.count == 1 && oneEntries.first?.id == commit)
        let unknownEndpoint = try HTTP.get(server.api + "/nope", token: ServedStore.readToken)
        #expect(unknownEndpoint.status == 404 && unknownEndpoint.json?["code"] as? String == "not-found", "\(unknownEndpoint)")
        let wrongMethod = try HTTP.send("DELETE", server.api + "/refs", token: ServedStore.writeToken)
        #expect((400..<500).contains(wrongMethod.status), "\(wrongMethod)")

        // Leases: acquire, renew, release; unknown ids are 404.
        let lease = try HTTP.send("POST", server.api + "/leases", token: ServedStore.writeToken)
        let leaseID = try #require(lease.json?["id"] as? String, "\(lease)")
        #expect(server.leaseFiles().count == 1)
        #expect(try HTTP.send("POST", server.api + "/leases/" + leaseID, token: ServedStore.writeToken).status == 200)
        #expect(try HTTP.send("POST", server.api + "/leases/unknown", token: ServedStore.writeToken).status == 404)
        #expect(try HTTP.send("DELETE", server.api + "/leases/" + leaseID, token: ServedStore.writeToken).status == 204)
        #expect(try HTTP.send("DELETE", server.api + "/leases/" + leaseID, token: ServedStore.writeToken).status == 404)
        #expect(server.leaseFiles().isEmpty)

        #expect(try server.fsck().status == 0)
        #expect(server.answers())
    }

    @Test("--max-body 64K: a larger upload is 413 and stores nothing; smaller ones pass")
    func bodyLimit() throws {
        let server = try ServedStore(maxBody: "64K")
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        let big = ObjectCodec.encode(kind: .blob, payload: [UInt8](FS.randomData(count: 100_000, seed: 5)))
        let small = ObjectCodec.encode(kind: .blob, payload: Array("small enough\n".utf8))
        let before = server.state()
        let r = try HTTP.post(server.api + "/packs", token: ServedStore.writeToken, body: Data(WireFormat.packStream([big])),
                              contentType: WireFormat.packMediaType)
        #expect(r.status == 413, "\(r)")
        #expect(r.text.contains("--max-body"), "the error says how to raise the limit: \(r)")
        #expect(server.state() == before)
        // Exactly at the limit passes; one byte over does not.
        let pad = 65_536 - PackFormat.headerSize - WireFormat.entryHeaderSize - PackFormat.footerSize
        let exact = ObjectCodec.encode(kind: .blob, payload: [UInt8](FS.randomData(count: pad, seed: 7)))
        try #require(exact.codec == .identity)
        let exactStream = WireFormat.packStream([exact])
        #expect(exactStream.count == 65_536)
        let atLimit = try HTTP.post(server.api + "/packs", token: ServedStore.writeToken, body: Data(exactStream), contentType: WireFormat.packMediaType)
        #expect(atLimit.status == 200, "a body of exactly --max-body bytes: \(atLimit)")
        let overBy1 = ObjectCodec.encode(kind: .blob, payload: [UInt8](FS.randomData(count: pad + 1, seed: 8)))
        let over = try HTTP.post(server.api + "/packs", token: ServedStore.writeToken, body: Data(WireFormat.packStream([overBy1])),
                                 contentType: WireFormat.packMediaType)
        #expect(over.status == 413, "\(over)")
        let ok = try HTTP.post(server.api + "/packs", token: ServedStore.writeToken, body: Data(WireFormat.packStream([small])),
                               contentType: WireFormat.packMediaType)
        #expect(ok.status == 200, "\(ok)")
        // A push larger than the limit fails clearly (the client sends one pack) and leaves the server whole.
        try t.workspace("a")
        try FS.write(t.dir("a/big.bin"), FS.randomData(count: 300_000, seed: 6))
        try t.ok("add", "big.bin", in: "a")
        try t.ok("commit", "-m", "big", "--no-env", "--no-code", in: "a")
        let beforePush = server.state()
        let push = try t.run(["push"], in: "a")
        #expect(push.status != 0, "\(push)")
        #expect(push.stderr.contains("limit"), "\(push.stderr)")
        #expect(server.state() == beforePush)
        #expect(server.leaseFiles().isEmpty)
        #expect(try server.fsck().status == 0)
        #expect(server.answers())
    }

    @Test("a push refused mid-upload (413 over --max-body) fails within seconds, not after socket timeouts")
    func refusedLargeUploadFailsFast() throws {
        let server = try ServedStore(maxBody: "64K")
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        try t.workspace("a")
        // Larger than the kernel's socket buffers, so the client is still sending when the server answers.
        try FS.write(t.dir("a/big.bin"), FS.randomData(count: 40_000_000, seed: 61))
        try t.ok("add", "big.bin", in: "a")
        try t.ok("commit", "-m", "big", "--no-env", "--no-code", in: "a")
        let before = server.state()
        let push = try CLI.Running(executable: try CLI.requireBinary(), args: ["push"], cwd: t.dir("a"), outDir: t.tmp.path, tag: "bigpush",
                                   env: HTTPTeam.env(ServedStore.writeToken))
        let started = Date()
        while push.process.isRunning && Date().timeIntervalSince(started) < 10 { usleep(20_000) }
        let finished = !push.process.isRunning
        if !finished { kill(push.process.processIdentifier, SIGKILL) }
        let out = push.wait()
        let seconds = Date().timeIntervalSince(started)
        #expect(finished, "the push was still running after \(Int(seconds)) s (server answered long before)")
        if finished {
            #expect(out.status == 2 && out.stderr.contains("limit"), "\(out)")
        }
        #expect(server.state() == before, "nothing stored")
        #expect(server.answers())
    }

    @Test("URL path tricks never read outside the store; downloads stream the right bytes with a safe filename")
    func pathsAndDownloads() throws {
        let server = try ServedStore()
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        try t.workspace("a")
        let model = FS.randomData(count: 3_000_000, seed: 31)
        try FS.write(t.dir("a/model.bin"), model)
        try FS.write(t.dir("a/small.txt"), "tiny\n")
        try t.ok("add", "model.bin", "small.txt", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        let rows = try #require(try JSONSerialization.jsonObject(with: try t.run(["ls-tree", "-r", "--json", "HEAD"], in: "a").stdoutData) as? [[String: Any]])
        let modelID = try #require(rows.first { $0["path"] as? String == "model.bin" }?["id"] as? String)
        let smallID = try #require(rows.first { $0["path"] as? String == "small.txt" }?["id"] as? String)
        let commit = try t.commitID("HEAD", in: "a")
        let tok = ServedStore.readToken
        let secret = "mlstore-format"  // what the store's format file says; must never come back

        // Through URLSession (percent-encoding is sent as is).
        for path in ["/objects/..%2F..%2Fformat", "/objects/..%2fformat", "/objects/%2e%2e%2f%2e%2e%2fformat",
                     "/objects/" + String(modelID.prefix(63)), "/objects/" + modelID + "0", "/objects/" + modelID.prefix(62) + "..",
                     "/objects/" + String(repeating: "g", count: 64), "/objects/", "/objects/%00", "/download/..%2F..%2Fformat",
                     "/download/" + String(modelID.prefix(63)) + "?name=x", "/download/" + commit, "/objects/%2Fetc%2Fpasswd",
                     "/objects/" + modelID + "%2F..%2F..%2Fformat"] {
            let r = try HTTP.get(server.api + path, token: tok)
            #expect((400..<500).contains(r.status), "GET \(path): \(r)")
            #expect(!r.text.contains(secret) && !r.text.contains("root:"), "GET \(path) leaked: \(r)")
        }
        // Raw requests (no client-side normalisation of dot segments).
        for target in ["/api/v1/objects/../../format", "/api/v1/objects/../../../../etc/passwd", "/api/v1/download/../format",
                       "/api/v1/objects/" + modelID + "/../../format", "/api/v1/../../format", "/../format", "/api/v1/fsck/../../format",
                       "/format", "/objects/pack", "/api/v1/objects//" + modelID] {
            let reply = try HTTP.raw(port: server.port, Array("GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(tok)\r\nConnection: close\r\n\r\n".utf8))
            let status = HTTP.status(ofRaw: reply)
            #expect(status.map { (400..<500).contains($0) } ?? true, "GET \(target): \(reply.prefix(300))")
            #expect(!reply.contains(secret) && !reply.contains("root:"), "GET \(target) leaked: \(reply.prefix(300))")
        }

        // A chunked file downloads whole, verified, with a sanitised name.
        let dl = try HTTP.get(server.api + "/download/" + modelID + "?name=../../etc/passwd", token: tok)
        #expect(dl.status == 200, "\(dl.status)")
        #expect(dl.body == model, "the downloaded bytes are the file's (\(dl.body.count) bytes)")
        #expect(dl.header("Content-Disposition") == "attachment; filename=\"passwd\"", "\(dl.headers)")
        #expect(dl.header("Content-Length") == "3000000")
        let head = try HTTP.send("HEAD", server.api + "/download/" + modelID + "?name=model.bin", token: tok)
        #expect(head.status == 200 && head.body.isEmpty, "\(head)")
        #expect(head.header("Content-Length") == "3000000", "HEAD names the size of what GET sends: \(head.headers)")
        for (name, expected) in [("..", smallID), ("a%22b%5Cc.bin", "abc.bin"), ("x%0d%0aSet-Cookie:%20evil=1", "xSet-Cookie: evil=1"),
                                 ("dir/", "dir"), ("%2F", smallID), ("", smallID), ("%2e%2e%2f%2e%2e%2fetc%2fshadow", "shadow"),
                                 ("model%00.bin", "model.bin")] {
            let r = try HTTP.send("HEAD", server.api + "/download/" + smallID + "?name=" + name, token: tok)
            #expect(r.status == 200 && r.header("Content-Disposition") == "attachment; filename=\"\(expected)\"", "name \(name): \(r.headers)")
            #expect(r.header("Set-Cookie") == nil, "no header injection through the name: \(r.headers)")
        }
        let smallDL = try HTTP.get(server.api + "/download/" + smallID, token: tok)
        #expect(smallDL.status == 200 && smallDL.text == "tiny\n" && smallDL.header("Content-Disposition") == "attachment; filename=\"\(smallID)\"", "\(smallDL)")
        let missing = try HTTP.get(server.api + "/download/" + String(repeating: "ab", count: 32), token: tok)
        #expect(missing.status == 404, "\(missing)")
        // The web UI side: paths outside the API do not serve store files either.
        for target in ["/format", "/objects/pack", "/../format", "/config", "/refs/heads/main"] {
            let reply = try HTTP.raw(port: server.port, Array("GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(tok)\r\nConnection: close\r\n\r\n".utf8))
            #expect(!reply.contains(secret) && !reply.contains(commit), "UI GET \(target) leaked: \(reply.prefix(300))")
        }
        #expect(server.answers())
    }

    @Test("a damaged object on the server: GET is 422, fetch and clone fail with exit 4 and store nothing, fsck --remote finds it")
    func damagedServerStore() throws {
        let server = try ServedStore()
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 1_000_000, seed: 41))
        try t.ok("add", "model.bin", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        try t.workspace("b")
        let localBefore = FS.listFiles(t.dir("b/.mlstore/objects"))
        let pack = try #require(server.objectFiles().first { $0.hasSuffix(".pack") })
        let packPath = server.store + "/objects/" + pack
        let bytes = try #require(FS.read(packPath))
        let first = hex(bytes[8..<40])
        try FS.flipByte(packPath, at: 8 + 50 + 500)
        let get = try HTTP.get(server.api + "/objects/" + first, token: ServedStore.readToken)
        #expect(get.status == 422 && get.text.contains(first), "a damaged object is reported, not sent: \(get)")
        let fetch = try t.run(["fetch"], in: "b", token: ServedStore.readToken)
        #expect(fetch.status != 0)
        #expect(fetch.status == 4, "\(fetch)")
        #expect(fetch.stderr.contains(first), "the error names the damaged object: \(fetch.stderr)")
        #expect(FS.listFiles(t.dir("b/.mlstore/objects")) == localBefore, "nothing may enter the local store")
        let fsck = try t.run(["fsck", "--remote", "origin"], in: "a", token: ServedStore.readToken)
        #expect(fsck.status == 4, "\(fsck)")
        #expect(fsck.stdout.contains(first) || fsck.stderr.contains(first), "\(fsck)")
        let clone = try t.clone("c", token: ServedStore.readToken)
        #expect(clone.status != 0)
        #expect(clone.status == 4, "\(clone)")
        #expect(!FS.exists(t.dir("c")))
        #expect(server.answers())
    }

    @Test("the store changing under the server (a directory push, gc on the server's machine) is served at once; gc waits for HTTP leases")
    func storeChangedUnderTheServer() throws {
        let server = try ServedStore()
        defer { server.stop() }
        let t = try HTTPTeam(server)
        defer { t.remove() }
        try t.committed("a", ["f.txt": "one\n"])
        try t.ok("push", in: "a")
        // An operator pushes straight into the store directory: more than 32 objects, so a pack is published.
        try FS.mkdirs(t.dir("op"))
        try t.ok("init", in: "op")
        try t.ok("remote", "add", "direct", server.store, in: "op")
        for i in 0..<40 { try FS.write(t.dir("op/small/\(i).txt"), "small \(i)\n") }
        let big = FS.randomData(count: 700_000, seed: 51)
        try FS.write(t.dir("op/big.bin"), big)
        try t.ok("add", "small", "big.bin", in: "op")
        try t.ok("commit", "-m", "direct", "--no-env", "--no-code", in: "op")
        try t.ok("switch", "-c", "direct", in: "op")
        let packsBefore = server.objectFiles().filter { $0.hasSuffix(".pack") }.count
        try t.ok("push", "direct", "direct", in: "op")
        #expect(server.objectFiles().filter { $0.hasSuffix(".pack") }.count == packsBefore + 1, "the direct push published a pack")
        let rows = try #require(try JSONSerialization.jsonObject(with: try t.run(["ls-tree", "-r", "--json", "HEAD"], in: "op").stdoutData) as? [[String: Any]])
        let bigID = try #require(rows.first { $0["path"] as? String == "big.bin" }?["id"] as? String)
        // The first request about the new pack's objects is a download (nothing has made the server re-read its pack list).
        let dl = try HTTP.get(server.api + "/download/" + bigID + "?name=big.bin", token: ServedStore.readToken)
        #expect(dl.status == 200 && dl.body == big, "download of an object another process published: HTTP \(dl.status)")
        let obj = try HTTP.get(server.api + "/objects/" + bigID, token: ServedStore.readToken)
        #expect(obj.status == 200, "\(obj)")
        let dl2 = try HTTP.get(server.api + "/download/" + bigID, token: ServedStore.readToken)
        #expect(dl2.status == 200 && dl2.body == big)
        let clone = try t.clone("b", token: ServedStore.readToken)
        try #require(clone.status == 0, "\(clone)")
        try t.ok("checkout", "origin/direct", in: "b", token: ServedStore.readToken)
        #expect(FS.read(t.dir("b/big.bin")) == big)

        // gc of the store directory (as spec/http.md advises) waits for a lease the server holds for a client…
        let lease = try HTTP.send("POST", server.api + "/leases", token: ServedStore.writeToken)
        let leaseID = try #require(lease.json?["id"] as? String, "\(lease)")
        let blocked = try CLI.mlstore(["gc", "--remote", server.store, "--prune", "now", "--wait", "1"], in: t.tmp.path)
        #expect(blocked.status == 8, "gc must wait for the HTTP client's push lease: \(blocked)")
        #expect(try HTTP.send("DELETE", server.api + "/leases/" + leaseID, token: ServedStore.writeToken).status == 204)
        // …and then repacks under the running server, which keeps serving fetches, clones and pushes.
        let packsBeforeGC = server.objectFiles().filter { $0.hasSuffix(".pack") }
        let gc = try CLI.mlstore(["gc", "--remote", server.store, "--prune", "now", "--wait", "5"], in: t.tmp.path)
        #expect(gc.status == 0, "\(gc)")
        let packsAfterGC = server.objectFiles().filter { $0.hasSuffix(".pack") }
        #expect(packsAfterGC.count == 1 && packsAfterGC != packsBeforeGC, "gc merged the small packs: \(packsBeforeGC) → \(packsAfterGC)")
        let clone2 = try t.clone("c", token: ServedStore.readToken)
        #expect(clone2.status == 0, "clone after gc repacked the store: \(clone2)")
        let dl3 = try HTTP.get(server.api + "/download/" + bigID, token: ServedStore.readToken)
        #expect(dl3.status == 200 && dl3.body == big, "download after gc: HTTP \(dl3.status)")
        try FS.write(t.dir("a/f.txt"), "two\n")
        try t.ok("add", "f.txt", in: "a")
        try t.ok("commit", "-m", "after gc", "--no-env", "--no-code", in: "a")
        let push = try t.run(["push"], in: "a")
        #expect(push.status == 0, "push after gc: \(push)")
        let remoteFsck = try t.run(["fsck", "--remote", "origin"], in: "a", token: ServedStore.readToken)
        #expect(remoteFsck.status == 0, "\(remoteFsck)")
        #expect(try server.fsck().status == 0)
    }

    @Test("mlstore serve refuses bad configuration at start: malformed tokens, missing store, open non-loopback host, port in use")
    func serveConfiguration() throws {
        let tmp = try TempDir(prefix: "mlstore-serve-conf")
        defer { tmp.remove() }
        let store = tmp.path + "/s"
        try CLI.mlstore(["init", "--bare", store], in: tmp.path)
        func serve(_ extra: [String], store: String = store) throws -> CLI.Output {
            // Only refusals are run here: each exits at once (a started server would be a test failure, killed after 20 s).
            let p = try CLI.Running(executable: try CLI.requireBinary(), args: ["serve", "--store", store, "--quiet"] + (extra.contains("--port") ? [] : ["--port", "0"]) + extra,
                                    cwd: tmp.path, outDir: tmp.path, tag: "conf", env: [:])
            let deadline = Date().addingTimeInterval(20)
            while p.process.isRunning && Date() < deadline { usleep(10_000) }
            if p.process.isRunning { kill(p.process.processIdentifier, SIGKILL) }
            return p.wait()
        }
        let cases: [(String, String, Int32, String)] = [
            ("short", "abc write\n", 2, "shorter than 16"),
            ("scope", "0123456789abcdef0123 admin\n", 2, "scope"),
            ("fields", "0123456789abcdef0123\n", 2, "expected"),
            ("twice", "0123456789abcdef0123 read\n0123456789abcdef0123 write\n", 2, "twice"),
        ]
        for (name, text, status, message) in cases {
            try FS.write(tmp.path + "/tokens-" + name, text)
            let r = try serve(["--tokens", tmp.path + "/tokens-" + name])
            #expect(r.status == status && r.stderr.contains(message), "tokens \(name): \(r)")
            #expect(!r.stdout.contains("listening"), "\(r)")
        }
        let noFile = try serve(["--tokens", tmp.path + "/absent"])
        #expect(noFile.status != 0 && !noFile.stdout.contains("listening"), "\(noFile)")
        let noStore = try serve([], store: tmp.path + "/nowhere")
        #expect(noStore.status == 3 && !noStore.stdout.contains("listening"), "\(noStore)")
        let open = try serve(["--host", "0.0.0.0"])
        #expect(open.status == 2 && !open.stdout.contains("listening"), "a non-loopback host without tokens: \(open)")
        let nobody = try serve([])
        #expect(nobody.status == 2 && nobody.stderr.contains("--anonymous-read") && !nobody.stdout.contains("listening"),
                "loopback without tokens or --anonymous-read: anonymous read is the operator's choice, never a default: \(nobody)")
        let badSize = try serve(["--max-body", "lots"])
        #expect(badSize.status == 2, "\(badSize)")
        // Port in use: a second server on the first one's port fails clearly; the first keeps serving.
        let first = try ServedStore()
        defer { first.stop() }
        let second = try serve(["--port", "\(first.port)", "--anonymous-read"])
        #expect(second.status != 0 && second.stderr.contains("in use"), "\(second)")
        #expect(first.answers())
    }

    @Test("the server keeps serving after client errors; SIGTERM and SIGINT stop it with exit 0 and release leases")
    func gracefulShutdown() throws {
        let server = try ServedStore()
        let t = try HTTPTeam(server)
        defer { t.remove() }
        try t.committed("a", ["f.txt": "one\n"])
        // A barrage of bad requests.
        for _ in 0..<3 {
            _ = try HTTP.post(server.api + "/packs", token: ServedStore.writeToken, body: Data([1, 2, 3]), contentType: WireFormat.packMediaType)
            _ = try HTTP.get(server.api + "/refs", token: ServedStore.unknownToken)
            _ = try HTTP.get(server.api + "/objects/zz", token: ServedStore.readToken)
            _ = try HTTP.raw(port: server.port, Array("GARBAGE\r\n\r\n".utf8), timeout: 5)
            _ = try HTTP.raw(port: server.port, Array("POST /api/v1/packs HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n".utf8), timeout: 5)
            _ = try HTTP.raw(port: server.port, Array("GET /api/v1/info HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n".utf8), timeout: 5)
            _ = try HTTP.raw(port: server.port, [], timeout: 5)
        }
        #expect(server.answers())
        // Requests from several clients at once.
        let failures = Counter()
        let api = server.api
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            if (try? HTTP.get(api + "/refs", token: ServedStore.readToken))?.status != 200 { failures.add() }
        }
        #expect(failures.value == 0)
        // A normal push still works.
        try t.ok("push", in: "a")
        // A lease held for a client is released at shutdown.
        let lease = try HTTP.send("POST", server.api + "/leases", token: ServedStore.writeToken)
        #expect(lease.status == 200)
        #expect(server.leaseFiles().count == 1)
        let out = server.stop(SIGTERM)
        #expect(out != nil)
        #expect(server.leaseFiles().isEmpty, "leases held for clients are released at shutdown: \(server.leaseFiles())")
        #expect(!server.answers(), "the port is closed after shutdown")
        #expect(try server.fsck().status == 0)

        let second = try ServedStore()
        #expect(second.answers())
        second.stop(SIGINT)
    }

    @Test("bad remote input: tokens, queries or fragments in http URLs, unknown schemes, set-token on unknown or non-http remotes — clear errors, config unchanged")
    func remoteConfigurationBadInput() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.ok("remote", "add", "shared", ws.path("shared"))
        let before = ws.read(".mlstore/config")
        for (url, status) in [("http://127.0.0.1:8470/?token=abc", Int32(2)), ("http://127.0.0.1:8470/#frag", 2),
                              ("http://bob:secret@127.0.0.1:8470", 2), ("ftp://example.com/store", 2), ("http://", 2)] {
            let r = try ws.run("remote", "add", "x", url)
            #expect(r.status == status && r.stderr.contains("error:") && r.stderr.contains("hint:"), "remote add \(url): \(r)")
        }
        for (name, status, message) in [("nope", Int32(3), "no remote named"), ("shared", 2, "not an http")] {
            let r = try CLI.run("/bin/sh", ["-c", "echo 0123456789abcdef0123 | \"$0\" remote set-token \(name)", try CLI.requireBinary()], in: ws.root)
            #expect(r.status == status && r.stderr.contains(message), "set-token \(name): \(r)")
        }
        #expect(ws.read(".mlstore/config") == before, "refused commands leave the config as it was")
    }

    @Test("a stored token makes the config private (0600), and later config writes keep it so")
    func storedTokenIsPrivate() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.ok("remote", "add", "team", "http://127.0.0.1:1")
        let set = try CLI.run("/bin/sh", ["-c", "echo 0123456789abcdef0123 | \"$0\" remote set-token team", try CLI.requireBinary()], in: ws.root)
        #expect(set.status == 0, "\(set)")
        #expect((FS.lstatInfo(ws.path(".mlstore/config"))?.st_mode ?? 0) & 0o777 == 0o600)
        try ws.ok("remote", "add", "other", ws.path("elsewhere"))
        #expect((FS.lstatInfo(ws.path(".mlstore/config"))?.st_mode ?? 0) & 0o777 == 0o600, "a later write keeps the config private")
        #expect(ws.read(".mlstore/config")?.contains("0123456789abcdef0123") == true)
    }
}
