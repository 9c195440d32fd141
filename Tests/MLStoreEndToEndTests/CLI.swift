import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Helpers for driving the built `mlstore` binary as a subprocess.
enum CLI {
    /// The outcome of one process run.
    struct Output: CustomStringConvertible {
        var status: Int32
        var stdoutData: Data
        var stderr: String
        var stdout: String { String(decoding: stdoutData, as: UTF8.self) }
        var lines: [String] { stdout.split(separator: "\n").map(String.init) }
        var description: String { "exit \(status)\n--- stdout ---\n\(stdout)\n--- stderr ---\n\(stderr)" }
    }

    /// The `mlstore` executable in the build directory holding this test bundle, found by walking up
    /// from `/proc/self/exe` (e.g. `.build/x86_64-unknown-linux-gnu/debug/mlstore`).
    static let binary: String? = {
        let fm = FileManager.default
        let exe = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent().standardizedFileURL.path
        while true {
            for candidate in [dir + "/mlstore", dir + "/debug/mlstore", dir + "/release/mlstore"] {
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue,
                    fm.isExecutableFile(atPath: candidate)
                {
                    return candidate
                }
            }
            if dir == "/" || dir.isEmpty { return nil }
            dir = (dir as NSString).deletingLastPathComponent
        }
    }()

    static func requireBinary() throws -> String {
        try #require(
            binary,
            "no `mlstore` executable found next to the test bundle (searched upward from /proc/self/exe); run `swift build` first")
    }

    /// Runs `mlstore args...` in `cwd`.
    @discardableResult
    static func mlstore(_ args: [String], in cwd: String, env: [String: String] = [:]) throws -> Output {
        try run(try requireBinary(), args, in: cwd, env: env)
    }

    /// Starts `mlstore` without waiting (for concurrency tests). Output goes to files in `outDir`.
    static func start(_ args: [String], in cwd: String, outDir: String, tag: String) throws -> Running {
        try Running(executable: try requireBinary(), args: args, cwd: cwd, outDir: outDir, tag: tag, env: [:])
    }

    /// Runs any executable (a full path or a name on PATH) and captures its output.
    @discardableResult
    static func run(_ executable: String, _ args: [String], in cwd: String, env: [String: String] = [:]) throws -> Output {
        let outDir = try TempDir(prefix: "mlstore-e2e-out")
        defer { outDir.remove() }
        let r = try Running(executable: executable, args: args, cwd: cwd, outDir: outDir.path, tag: "run", env: env)
        return r.wait()
    }

    /// A started process whose stdout and stderr go to files (no pipe can fill up and block it).
    final class Running {
        let process = Process()
        let outPath: String
        let errPath: String

        init(executable: String, args: [String], cwd: String, outDir: String, tag: String, env: [String: String]) throws {
            outPath = outDir + "/\(tag).stdout"
            errPath = outDir + "/\(tag).stderr"
            FileManager.default.createFile(atPath: outPath, contents: nil)
            FileManager.default.createFile(atPath: errPath, contents: nil)
            var path = executable
            if !executable.hasPrefix("/") { path = try #require(CLI.which(executable), "\(executable) not found on PATH") }
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = args
            process.currentDirectoryURL = URL(fileURLWithPath: cwd)
            var environment = ProcessInfo.processInfo.environment
            environment["NO_COLOR"] = "1"
            environment["GIT_CONFIG_NOSYSTEM"] = "1"
            environment["GIT_AUTHOR_NAME"] = "t"
            environment["GIT_AUTHOR_EMAIL"] = "t@example.com"
            environment["GIT_COMMITTER_NAME"] = "t"
            environment["GIT_COMMITTER_EMAIL"] = "t@example.com"
            for (k, v) in env { environment[k] = v }
            process.environment = environment
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
            try process.run()
        }

        func wait() -> Output {
            process.waitUntilExit()
            let out = FileManager.default.contents(atPath: outPath) ?? Data()
            let err = FileManager.default.contents(atPath: errPath) ?? Data()
            return Output(status: process.terminationStatus, stdoutData: out, stderr: String(decoding: err, as: UTF8.self))
        }
    }

    static func which(_ name: String) -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for d in dirs where FileManager.default.isExecutableFile(atPath: "\(d)/\(name)") { return "\(d)/\(name)" }
        return nil
    }

    static var hasGit: Bool { which("git") != nil }

    /// The racing pusher of the concurrent-push tests (directory, S3 and HTTP remotes), written to
    /// `<dir>/pusher.sh`; returns its path. Run as `bash pusher.sh MLSTORE INDEX ROUNDS "ALLOWED EXITS"`: each
    /// round commits to the pusher's own branch and pushes it, then races the others on main — a push refused
    /// with an allowed status (5: moved / non-fast-forward, 8: lock held) fetches, rebuilds on the new tip and
    /// retries (60 attempts). Prints `LANDED <id>`, `REJECTED <status>` (`REJECTED-CAS` when the swap lost),
    /// `BAD …` (exit 19) or `GAVE UP` (exit 20).
    static func racingPusher(in dir: String) throws -> String {
        let script = """
            set -u
            M="$1"; i="$2"; rounds="$3"; allowed="$4"
            for round in $(seq 1 "$rounds"); do
              "$M" switch "own$i" >/dev/null 2>&1 || "$M" switch -c "own$i" >/dev/null || exit 10
              printf 'w%s r%s\\n' "$i" "$round" > "own-$i.txt"
              "$M" add "own-$i.txt" >/dev/null || exit 11
              "$M" commit -m "w$i own $round" --no-env --no-code >/dev/null || exit 12
              "$M" push origin "own$i" >/dev/null || { echo "OWN-BRANCH PUSH FAILED"; exit 13; }
              landed=0
              for attempt in $(seq 1 60); do
                "$M" fetch >/dev/null || exit 14
                "$M" checkout --force origin/main >/dev/null || exit 15
                "$M" branch -d main >/dev/null 2>&1
                "$M" switch -c main >/dev/null || exit 16
                printf 'w%s r%s\\n' "$i" "$round" > "main-$i.txt"
                "$M" add "main-$i.txt" >/dev/null || exit 17
                "$M" commit -m "w$i main $round" --no-env --no-code >/dev/null || exit 18
                out=$("$M" push origin main 2>&1); st=$?
                if [ $st -eq 0 ]; then echo "LANDED $("$M" log -n 1 --oneline | cut -c1-12)"; landed=1; break; fi
                case " $allowed " in *" $st "*) ;; *) echo "BAD $st $out"; exit 19;; esac
                case "$out" in *"moved while pushing"*) echo "REJECTED-CAS $st";; *) echo "REJECTED $st";; esac
              done
              [ $landed -eq 1 ] || { echo "GAVE UP"; exit 20; }
            done
            """
        let path = dir + "/pusher.sh"
        try FS.write(path, script)
        return path
    }
}

/// A scratch area holding several workspaces and a shared directory remote at `<tmp>/remote`, driven through
/// the built binary (remote and gc tests).
struct RemoteSite {
    let tmp: TempDir
    /// Exit statuses ``json(_:in:sourceLocation:)`` accepts (push prints JSON and exits 5 when it rejects refs).
    let jsonStatuses: Set<Int32>
    var remote: String { tmp.path + "/remote" }
    static let env = ["MLSTORE_AUTHOR_NAME": "Tester", "MLSTORE_AUTHOR_EMAIL": "t@example.com"]

    init(prefix: String, jsonStatuses: Set<Int32> = [0]) throws {
        tmp = try TempDir(prefix: prefix)
        self.jsonStatuses = jsonStatuses
    }
    func remove() { tmp.remove() }
    func dir(_ name: String) -> String { tmp.path + "/" + name }

    @discardableResult
    func run(_ args: [String], in name: String) throws -> CLI.Output {
        try CLI.mlstore(args, in: dir(name), env: Self.env)
    }

    /// Runs and requires success; returns stdout.
    @discardableResult
    func ok(_ args: String..., in name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try run(args, in: name)
        try #require(r.status == 0, "mlstore \(args.joined(separator: " ")) in \(name): \(r)", sourceLocation: sourceLocation)
        return r.stdout
    }

    /// A workspace with a remote named origin.
    func workspace(_ name: String) throws {
        try FS.mkdirs(dir(name))
        try ok("init", in: name)
        try ok("remote", "add", "origin", remote, in: name)
    }

    func json(_ args: String..., in name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let r = try run(args + ["--json"], in: name)
        try #require(jsonStatuses.contains(r.status), "mlstore \(args.joined(separator: " ")) --json in \(name): \(r)", sourceLocation: sourceLocation)
        return try #require(try JSONSerialization.jsonObject(with: r.stdoutData) as? [String: Any], sourceLocation: sourceLocation)
    }

    func fsckRemote() throws -> CLI.Output {
        try CLI.mlstore(["fsck", "--remote", remote], in: tmp.path, env: Self.env)
    }
}

/// A fresh temporary directory (resolved, without symlinks), removed by ``remove()``.
final class TempDir {
    let path: String

    init(prefix: String = "mlstore-e2e") throws {
        let base = FileManager.default.temporaryDirectory.resolvingSymlinksInPath().path
        var template = Array((base + "/\(prefix)-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        path = String(cString: template)
    }

    /// Removes the tree (making read-only directories writable first, as objects are 0444).
    func remove() {
        if (try? FileManager.default.removeItem(atPath: path)) != nil { return }
        // Make every directory writable, then retry.
        if let e = FileManager.default.enumerator(atPath: path) {
            while let rel = e.nextObject() as? String {
                if let st = FS.lstatInfo(path + "/" + rel), st.st_mode & S_IFMT == S_IFDIR { chmod(path + "/" + rel, 0o755) }
            }
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    func url(_ rel: String) -> String { rel.isEmpty ? path : path + "/" + rel }
}

/// File-system helpers (all paths absolute).
enum FS {
    static func mkdirs(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    static func write(_ path: String, _ data: Data, mode: mode_t = 0o644) throws {
        try mkdirs((path as NSString).deletingLastPathComponent)
        try data.write(to: URL(fileURLWithPath: path))
        #expect(chmod(path, mode) == 0)
    }

    static func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try write(path, Data(text.utf8), mode: mode)
    }

    static func read(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }
    static func readText(_ path: String) -> String? { read(path).map { String(decoding: $0, as: UTF8.self) } }

    static func symlink(_ path: String, to target: String) throws {
        try mkdirs((path as NSString).deletingLastPathComponent)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func lstatInfo(_ path: String) -> stat? {
        var st = stat()
        return lstat(path, &st) == 0 ? st : nil
    }

    static func remove(_ path: String) throws {
        if exists(path) { try FileManager.default.removeItem(atPath: path) }
    }

    static func setMtime(_ path: String, _ date: Date) throws {
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: path)
    }

    /// Deterministic pseudo-random bytes (SplitMix64), fast enough in debug builds.
    static func randomData(count: Int, seed: UInt64) -> Data {
        var data = Data(count: (count + 7) / 8 * 8)
        data.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            var s = seed
            for i in 0..<words.count {
                s &+= 0x9E37_79B9_7F4A_7C15
                var z = s
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                words[i] = z ^ (z >> 31)
            }
        }
        return data.prefix(count)
    }

    /// Flips the bits of one byte of a file (making it writable first).
    static func flipByte(_ path: String, at offset: Int) throws {
        #expect(chmod(path, 0o644) == 0)
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: UInt64(offset))
        let b = try #require(try h.read(upToCount: 1)).first!
        try h.seek(toOffset: UInt64(offset))
        try h.write(contentsOf: Data([b ^ 0xFF]))
    }

    static func truncate(_ path: String, to size: Int) throws {
        #expect(chmod(path, 0o644) == 0)
        #expect(Glibc.truncate(path, off_t(size)) == 0)
    }

    static func size(_ path: String) -> Int { lstatInfo(path).map { Int($0.st_size) } ?? -1 }

    /// The files and symlinks below `root` (relative paths), skipping `.mlstore` and `.git`.
    static func listFiles(_ root: String) -> [String] {
        var out: [String] = []
        func visit(_ rel: String) {
            let abs = rel.isEmpty ? root : root + "/" + rel
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: abs) else { return }
            for n in names.sorted() where n != ".mlstore" && n != ".git" {
                let r = rel.isEmpty ? n : rel + "/" + n
                guard let st = lstatInfo(root + "/" + r) else { continue }
                if st.st_mode & S_IFMT == S_IFDIR { visit(r) } else { out.append(r) }
            }
        }
        visit("")
        return out
    }

    /// What a path is, for exact comparison: kind, permission bits, and content or link target.
    struct Entry: Equatable, CustomStringConvertible {
        var kind: String
        var mode: mode_t
        var content: Data
        var description: String { "\(kind) \(String(mode, radix: 8)) \(content.count) bytes" }
    }

    static func snapshot(_ root: String) -> [String: Entry] {
        var out: [String: Entry] = [:]
        for rel in listFiles(root) {
            let p = root + "/" + rel
            guard let st = lstatInfo(p) else { continue }
            if st.st_mode & S_IFMT == S_IFLNK {
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: p)) ?? ""
                out[rel] = Entry(kind: "symlink", mode: 0, content: Data(target.utf8))
            } else {
                out[rel] = Entry(kind: "file", mode: st.st_mode & 0o7777, content: read(p) ?? Data())
            }
        }
        return out
    }
}

/// Decoded `status --json`.
struct StatusJSON: Decodable {
    struct Item: Decodable, Equatable {
        var path: String
        var change: String
    }
    var staged: [Item]
    var unstaged: [Item]
    var untracked: [String]

    static func parse(_ out: CLI.Output) throws -> StatusJSON {
        try JSONDecoder().decode(StatusJSON.self, from: out.stdoutData)
    }

    var stagedPaths: [String] { staged.map(\.path) }
    func unstagedChange(_ path: String) -> String? { unstaged.first { $0.path == path }?.change }
}

/// A workspace in a fresh temp dir with a store.
struct Workspace {
    let tmp: TempDir
    var root: String { tmp.path }

    /// Creates a temp dir and runs `mlstore init` in it (after `git init` if `git` is true).
    init(git: Bool = false) throws {
        tmp = try TempDir()
        if git {
            let g = try CLI.run("git", ["-c", "init.defaultBranch=main", "init", "-q", tmp.path], in: tmp.path)
            try #require(g.status == 0, "git init failed: \(g)")
        }
        let r = try CLI.mlstore(["init"], in: tmp.path)
        try #require(r.status == 0, "mlstore init failed: \(r)")
        try #require(FS.exists(tmp.path + "/.mlstore/format"))
    }

    func remove() { tmp.remove() }

    func path(_ rel: String) -> String { tmp.url(rel) }

    @discardableResult
    func run(_ args: String..., in sub: String = "") throws -> CLI.Output {
        try CLI.mlstore(args, in: path(sub))
    }

    @discardableResult
    func run(_ args: [String], in sub: String = "") throws -> CLI.Output {
        try CLI.mlstore(args, in: path(sub))
    }

    /// Runs and requires exit 0; returns stdout.
    @discardableResult
    func ok(_ args: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try CLI.mlstore(args, in: root)
        try #require(r.status == 0, "mlstore \(args.joined(separator: " ")) failed: \(r)", sourceLocation: sourceLocation)
        return r.stdout
    }

    func write(_ rel: String, _ text: String, mode: mode_t = 0o644) throws { try FS.write(path(rel), text, mode: mode) }
    func write(_ rel: String, _ data: Data, mode: mode_t = 0o644) throws { try FS.write(path(rel), data, mode: mode) }
    func read(_ rel: String) -> String? { FS.readText(path(rel)) }

    func status(_ extra: String...) throws -> StatusJSON {
        let r = try CLI.mlstore(["status", "--json"] + extra, in: root)
        try #require(r.status == 0, "status failed: \(r)")
        return try StatusJSON.parse(r)
    }

    /// `write-tree`, checked to print one 64-hex id.
    func writeTree(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let out = try ok("write-tree", sourceLocation: sourceLocation).trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(isObjectID(out), "write-tree printed \(out.debugDescription)", sourceLocation: sourceLocation)
        return out
    }

    /// Loose object files: (id, path).
    func looseObjects() -> [(id: String, path: String)] {
        let objects = path(".mlstore/objects")
        var out: [(String, String)] = []
        for d in (try? FileManager.default.contentsOfDirectory(atPath: objects)) ?? [] where d.count == 2 {
            for f in (try? FileManager.default.contentsOfDirectory(atPath: objects + "/" + d)) ?? [] {
                out.append((d + f, objects + "/" + d + "/" + f))
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    func packFiles(ext: String) -> [String] {
        let dir = path(".mlstore/objects/pack")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("pack-") && $0.hasSuffix("." + ext) }.sorted().map { dir + "/" + $0 }
    }

    /// `ls-tree -r --json` rows.
    func lsTree(_ tree: String) throws -> [[String: Any]] {
        let r = try run("ls-tree", "-r", "--json", tree)
        try #require(r.status == 0, "ls-tree failed: \(r)")
        return try #require(try JSONSerialization.jsonObject(with: r.stdoutData) as? [[String: Any]])
    }
}

func isObjectID(_ s: String) -> Bool {
    s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}

func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

// MARK: - Helpers for lineage, refs and registry tests

extension Workspace {
    /// Runs with extra environment variables (e.g. a pinned `MLSTORE_AUTHOR_DATE`); an empty value unsets
    /// an `MLSTORE_*` variable as far as mlstore is concerned.
    @discardableResult
    func run(env: [String: String], _ args: String..., in sub: String = "") throws -> CLI.Output {
        try CLI.mlstore(args, in: path(sub), env: env)
    }

    @discardableResult
    func run(env: [String: String], _ args: [String], in sub: String = "") throws -> CLI.Output {
        try CLI.mlstore(args, in: path(sub), env: env)
    }

    /// Runs with extra environment variables and requires exit 0; returns stdout.
    @discardableResult
    func ok(env: [String: String], _ args: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try CLI.mlstore(args, in: root, env: env)
        try #require(r.status == 0, "mlstore \(args.joined(separator: " ")) failed: \(r)", sourceLocation: sourceLocation)
        return r.stdout
    }

    /// Runs with extra environment variables and requires exit 0; returns stdout.
    @discardableResult
    func ok(env: [String: String], _ args: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try CLI.mlstore(args, in: root, env: env)
        try #require(r.status == 0, "mlstore \(args.joined(separator: " ")) failed: \(r)", sourceLocation: sourceLocation)
        return r.stdout
    }

    /// Runs (with `--json` added), requires exit 0 and parses stdout as JSON.
    func json(_ args: String..., env: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) throws -> Any {
        let r = try CLI.mlstore(args + ["--json"], in: root, env: env)
        try #require(r.status == 0, "mlstore \(args.joined(separator: " ")) --json failed: \(r)", sourceLocation: sourceLocation)
        return try #require(try? JSONTools.parse(r.stdoutData), "not JSON: \(r.stdout)", sourceLocation: sourceLocation)
    }

    /// `show <rev> --json` as a dictionary.
    func showJSON(_ rev: String = "HEAD", sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        try #require(try json("show", rev, sourceLocation: sourceLocation) as? [String: Any], sourceLocation: sourceLocation)
    }

    /// The full id a revision resolves to (via `show --json`).
    func commitID(_ rev: String = "HEAD", sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try #require(try showJSON(rev, sourceLocation: sourceLocation)["id"] as? String, sourceLocation: sourceLocation)
    }

    /// The raw header lines of a commit (`cat-object -p`), e.g. `params` → hex id.
    func commitHeaders(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: [String]] {
        let text = try ok("cat-object", "-p", id, sourceLocation: sourceLocation)
        var out: [String: [String]] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { break }
            let parts = line.split(separator: " ", maxSplits: 1)
            out[String(parts[0]), default: []].append(parts.count > 1 ? String(parts[1]) : "")
        }
        return out
    }

    /// The number of commits reachable from HEAD (0 before the first commit).
    func commitCount(sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
        try #require(try json("log", sourceLocation: sourceLocation) as? [Any], sourceLocation: sourceLocation).count
    }

    /// `fsck` exits 0 and reports no leftovers.
    func expectFsckClean(_ context: String = "", sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try run("fsck")
        #expect(r.status == 0, "fsck after \(context): \(r)", sourceLocation: sourceLocation)
        #expect(!r.stdout.contains("leftover"), "fsck after \(context): \(r.stdout)", sourceLocation: sourceLocation)
    }
}

/// An error thrown by a test helper.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A fixed author, optionally at a fixed time (`MLSTORE_AUTHOR_DATE`, also used for the committer).
func author(_ name: String = "Ada Lovelace", email: String = "ada@example.com", at time: Int? = nil) -> [String: String] {
    var env = ["MLSTORE_AUTHOR_NAME": name, "MLSTORE_AUTHOR_EMAIL": email]
    if let time { env["MLSTORE_AUTHOR_DATE"] = "\(time) +0000" }
    return env
}

/// JSON helpers for `--json` output.
enum JSONTools {
    static func parse(_ data: Data) throws -> Any {
        try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }

    static func parse(_ text: String) -> Any {
        (try? parse(Data(text.utf8))) ?? NSNull()
    }

    /// Sorted-key compact text of a JSON value, for exact comparison.
    static func canonical(_ value: Any?) -> String {
        guard let value, !(value is NSNull) else { return "null" }
        guard let d = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) else {
            return "<not JSON: \(value)>"
        }
        return String(decoding: d, as: UTF8.self)
    }

    /// Whether `actual` is the JSON written in `expected` (compared after canonicalization).
    static func equal(_ actual: Any?, _ expected: String) -> Bool {
        canonical(actual) == canonical(parse(expected))
    }

    /// Undoes Swift's synthesized `Codable` encoding of an enum (`{"number": {"_0": 0.9}}` → `0.9`), so
    /// tests that are not about the JSON shape of params/metrics/env can still check their values.
    static func plain(_ value: Any?) -> Any? {
        if let d = value as? [String: Any] {
            if d.count == 1, let (k, v) = d.first, ["null", "bool", "number", "string", "array", "object"].contains(k),
                let inner = v as? [String: Any]
            {
                if k == "null", inner.isEmpty { return NSNull() }
                if inner.count == 1, let x = inner["_0"] { return plain(x) }
            }
            return d.mapValues { plain($0) ?? NSNull() }
        }
        if let a = value as? [Any] { return a.map { plain($0) ?? NSNull() } }
        return value
    }

    static func number(_ value: Any?) -> Double? {
        switch value {
        case let d as Double: d
        case let i as Int: Double(i)
        case let n as NSNumber: n.doubleValue
        default: nil
        }
    }

    /// Whether the value contains the synthesized enum encoding anywhere.
    static func hasEnumEncoding(_ value: Any?) -> Bool { canonical(value) != canonical(plain(value)) }
}

extension Dictionary where Key == String, Value == Any {
    subscript(dict key: String) -> [String: Any]? { self[key] as? [String: Any] }
    subscript(array key: String) -> [Any]? { self[key] as? [Any] }
    subscript(string key: String) -> String? { self[key] as? String }
    subscript(number key: String) -> Double? { JSONTools.number(self[key]) }
}

extension JSONTools {
    /// stdout of a `--json` command that prints an object.
    static func object(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        try #require(parse(text) as? [String: Any], "not a JSON object: \(text)", sourceLocation: sourceLocation)
    }

    /// stdout of a `--json` command that prints an array of objects.
    static func array(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        try #require(parse(text) as? [[String: Any]], "not a JSON array of objects: \(text)", sourceLocation: sourceLocation)
    }
}
