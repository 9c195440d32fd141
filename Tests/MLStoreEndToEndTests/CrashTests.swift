import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// kill -9 at random instants during add, commit and promote (seeded and reproducible: the seed is printed;
/// set `MLSTORE_CRASH_SEED` to replay it and `MLSTORE_CRASH_TRIALS` for more trials). After every kill the
/// store passes `fsck`, the index is readable, and every ref holds either its old value or a new value that
/// the killed command could have written (a commit whose parent is the old value, a stage record whose
/// `previous` is the old record).
@Suite("crash safety (kill -9)", .serialized)
struct CrashTests {
    static let env = author("Crash Tester", email: "crash@example.com")

    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
    }

    static func refs(_ store: String) -> [String: String] {
        var out: [String: String] = [:]
        for rel in FS.listFiles(store + "/refs") where !rel.hasSuffix(".lock") {
            out["refs/" + rel] = FS.readText(store + "/refs/" + rel)?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return out
    }

    /// The raw header lines of an object (`cat-object -p`).
    static func headers(_ ws: Workspace, _ id: String) throws -> [String: [String]] {
        let r = try ws.run(["cat-object", "-p", id])
        guard r.status == 0 else { throw TestFailure("cat-object -p \(id): \(r)") }
        var out: [String: [String]] = [:]
        for line in r.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { break }
            let parts = line.split(separator: " ", maxSplits: 1)
            out[String(parts[0]), default: []].append(parts.count > 1 ? String(parts[1]) : "")
        }
        return out
    }

    @Test("kill -9 during add, commit and promote never breaks the store or a ref")
    func killDuringWrites() throws {
        let env = ProcessInfo.processInfo.environment
        let seed = env["MLSTORE_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64(UInt32.max))
        let trials = env["MLSTORE_CRASH_TRIALS"].flatMap { Int($0) } ?? 24
        print("crash tests: seed \(seed) (MLSTORE_CRASH_SEED=\(seed) replays), \(trials) trials")
        var rng = Rng(state: seed)
        let bin = try CLI.requireBinary()
        let ws = try Workspace()
        defer { ws.remove() }
        let store = ws.path(".mlstore")
        var killed = 0, locksCleared = 0, changedRefs = 0

        // A first commit so promote has something to promote.
        try ws.write("seed.txt", "seed\n")
        try ws.ok(env: Self.env, "add", "seed.txt")
        try ws.ok(env: Self.env, "commit", "-m", "seed", "--no-env", "--no-code")

        for trial in 0..<trials {
            let command = ["add", "commit", "promote"][trial % 3]
            // New content for this trial: a chunked file of 1–3 MB and small files.
            try ws.write("model.bin", FS.randomData(count: 1_000_000 + Int(rng.next() % 2_000_000), seed: seed &+ UInt64(trial)))
            for k in 0..<20 { try ws.write("small/\(k).txt", "trial \(trial) file \(k) \(rng.next())\n") }
            try ws.write("params.yaml", "lr: 0.\(trial + 1)\n")
            let args: [String]
            switch command {
            case "add": args = ["add", "model.bin", "small", "params.yaml"]
            case "commit":
                try ws.ok(env: Self.env, "add", "model.bin", "small", "params.yaml")
                args = ["commit", "-m", "trial \(trial)", "--params", "params.yaml", "--output", "model.bin", "--no-env", "--no-code"]
            default: args = ["promote", "fraud", "HEAD", "--stage", ["staging", "production"][Int(rng.next() % 2)], "-m", "trial \(trial)"]
            }
            let before = Self.refs(store)
            let delay = useconds_t(rng.next() % 250_000)
            let p = try CLI.Running(executable: bin, args: args, cwd: ws.root, outDir: ws.tmp.path, tag: "crash\(trial)", env: Self.env)
            usleep(delay)
            var wasKilled = false
            if p.process.isRunning {
                kill(p.process.processIdentifier, SIGKILL)
                wasKilled = true
                killed += 1
            }
            let out = p.wait()
            let context = "trial \(trial) \(command) killed after \(delay) µs (seed \(seed))"
            if !wasKilled { #expect(out.status == 0, "\(context) finished but failed: \(out)") }

            // A kill between creating a lock and renaming it leaves the lock (reported, never broken silently);
            // clear it as an operator would after checking no mlstore runs.
            for lock in FS.listFiles(store).filter({ $0.hasSuffix(".lock") }) {
                try FS.remove(store + "/" + lock)
                locksCleared += 1
            }

            let fsck = try ws.run("fsck")
            #expect(fsck.status == 0, "fsck after \(context): \(fsck)")
            let st = try ws.run("status")
            #expect(st.status == 0, "status after \(context): \(st)")

            let after = Self.refs(store)
            for (name, value) in after where value != before[name] {
                changedRefs += 1
                if name.hasPrefix("refs/heads/") {
                    #expect(command == "commit", "\(context): \(name) moved")
                    let h = try Self.headers(ws, value)
                    #expect(h["parent"] == before[name].map { [$0] } ?? nil, "\(context): \(name) = \(value) whose parent is not the old value")
                } else if name.hasPrefix("refs/stages/") {
                    #expect(command == "promote", "\(context): \(name) moved")
                    let h = try Self.headers(ws, value)
                    #expect(h["previous"] == before[name].map { [$0] } ?? nil, "\(context): \(name) = \(value) does not chain to the old record")
                } else {
                    Issue.record("\(context): unexpected ref change \(name): \(before[name] ?? "absent") → \(value)")
                }
            }
            for name in before.keys where after[name] == nil { Issue.record("\(context): \(name) disappeared") }

            // Move on: finish what was interrupted (a commit that already landed leaves nothing to commit).
            if command == "add" { try ws.ok(env: Self.env, "add", "model.bin", "small", "params.yaml") }
            if command == "commit" { _ = try ws.run(env: Self.env, args) }
        }
        // After all the kills, every command still works and the data is whole.
        try ws.write("final.txt", "final\n")
        try ws.ok(env: Self.env, "add", "final.txt", "model.bin")
        try ws.ok(env: Self.env, "commit", "-m", "final", "--no-env", "--no-code")
        try ws.ok(env: Self.env, "promote", "fraud", "HEAD", "--stage", "production", "-m", "final")
        let fsck = try ws.run("fsck")
        #expect(fsck.status == 0, "final fsck: \(fsck)")
        let model = ws.path("model.bin")
        let saved = FS.read(model)
        try FS.remove(model)
        try ws.ok("checkout", "--", "model.bin")
        #expect(FS.read(model) == saved)
        print("crash tests: \(trials) trials, \(killed) processes killed mid-flight, \(changedRefs) refs moved by killed or finished commands, \(locksCleared) stale locks cleared (seed \(seed))")
    }
}
