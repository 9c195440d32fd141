import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Fault injection at the syscall layer (`MLSTORE_FAULTS`, Sources/MLStoreBasics/Sys.swift) for every
/// writing command: after each injected ENOSPC/EIO the command fails with `error:` naming the cause, and the
/// store (and the remote, for push) still passes `fsck`, every ref is its old or its new value, and the
/// workspace index is still readable. EINTR and short writes must be harmless (the command succeeds).
///
/// The n-th call of an op is failed for n = 1, 2, 3, 5, 8, … (Fibonacci) until the command succeeds
/// (n passed its last call of that op); `MLSTORE_FAULTS_EXHAUSTIVE=1` tries every n instead (slow; run
/// outside CI). Each run starts from a byte-identical copy of the scenario's starting state.
@Suite("fault injection", .serialized)
struct FaultInjectionTests {
    /// A writing command and the state it starts from.
    struct Scenario: CustomStringConvertible, Sendable {
        var name: String
        var description: String { name }
    }

    static let env = author("Fault Tester", email: "fault@example.com", at: 1_700_000_000)

    /// (op, errno) rules that must make the command fail (when they hit a call the command makes).
    static let failingRules: [(op: String, errno: String)] = [
        ("write", "ENOSPC"), ("fsync", "ENOSPC"), ("rename", "ENOSPC"), ("open", "ENOSPC"), ("mkdir", "ENOSPC"),
        ("link", "ENOSPC"), ("write", "EIO"), ("fsync", "EIO"), ("rename", "EIO"), ("open", "EIO"),
    ]

    static let reasons = ["ENOSPC": "No space left on device", "EIO": "Input/output error"]

    /// A scratch area: `work` is where commands run; `base` is the pristine starting state.
    final class Scratch {
        let tmp: TempDir
        var work: String { tmp.path + "/work" }
        var base: String { tmp.path + "/base" }
        init() throws { tmp = try TempDir(prefix: "mlstore-faults") }

        func ok(_ args: [String], in rel: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let r = try CLI.mlstore(args, in: work + "/" + rel, env: FaultInjectionTests.env)
            try #require(r.status == 0, "setup: mlstore \(args.joined(separator: " ")): \(r)", sourceLocation: sourceLocation)
        }

        func saveBase() throws {
            let r = try CLI.run("cp", ["-a", work, base], in: tmp.path)
            try #require(r.status == 0, "\(r)")
        }

        func restore() throws {
            _ = try CLI.run("rm", ["-rf", work], in: tmp.path)
            let r = try CLI.run("cp", ["-a", base, work], in: tmp.path)
            try #require(r.status == 0, "\(r)")
        }

        /// Every ref file below `store/refs` (and HEAD) with its content.
        func refs(_ store: String) -> [String: String] {
            var out: [String: String] = [:]
            let root = work + "/" + store
            for rel in FS.listFiles(root + "/refs") where !rel.hasSuffix(".lock") {
                out["refs/" + rel] = FS.readText(root + "/refs/" + rel)?.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            out["HEAD"] = FS.readText(root + "/HEAD")?.trimmingCharacters(in: .whitespacesAndNewlines)
            return out
        }
    }

    /// How a scenario is built and run.
    struct Plan {
        var cwd: String  // relative to work
        var args: [String]
        var stores: [String]  // store dirs (relative to work) whose refs are checked
        var workspaces: [String]  // workspaces that must pass fsck and status
        var remote: String?  // a directory remote that must pass fsck --remote (if it exists)
        var deterministicRefs = true  // whether the new ref values are the same on every successful run
    }

    static func bigFile(_ path: String, seed: UInt64) throws {
        try FS.write(path, FS.randomData(count: 1_300_000, seed: seed))
    }

    static func smallFiles(_ dir: String, _ tag: String) throws {
        for i in 0..<6 { try FS.write(dir + "/s\(i).txt", "\(tag) small file \(i)\n") }
    }

    /// Builds the scenario's starting state in `s.work` and returns how to run it.
    static func setUp(_ name: String, _ s: Scratch) throws -> Plan {
        try FS.mkdirs(s.work + "/ws")
        try s.ok(["init"], in: "ws")
        try bigFile(s.work + "/ws/data/big.bin", seed: 1)
        try smallFiles(s.work + "/ws/data", "v1")
        try FS.write(s.work + "/ws/params.yaml", "lr: 0.01\nepochs: 3\nlayers: [64, 32]\n")
        let commitArgs = ["commit", "-m", "train", "--params", "params.yaml", "--metric", "acc=0.93", "--no-env", "--no-code"]
        let ws = Plan(cwd: "ws", args: [], stores: ["ws/.mlstore"], workspaces: ["ws"])
        switch name {
        case "add":
            var p = ws
            p.args = ["add", "data", "params.yaml"]
            return p
        case "commit":
            try s.ok(["add", "data", "params.yaml"], in: "ws")
            var p = ws
            p.args = commitArgs
            return p
        case "promote":
            try s.ok(["add", "data"], in: "ws")
            try s.ok(commitArgs, in: "ws")
            var p = ws
            p.args = ["promote", "fraud", "HEAD", "--stage", "production", "-m", "ship it"]
            p.deterministicRefs = false  // stage records carry the current time
            return p
        case "push":
            try s.ok(["add", "data"], in: "ws")
            try s.ok(commitArgs, in: "ws")
            try s.ok(["remote", "add", "origin", s.work + "/remote"], in: "ws")
            var p = ws
            p.args = ["push", "origin"]
            p.stores.append("remote")
            p.remote = "remote"
            return p
        case "fetch":
            try s.ok(["add", "data"], in: "ws")
            try s.ok(commitArgs, in: "ws")
            try s.ok(["remote", "add", "origin", s.work + "/remote"], in: "ws")
            try s.ok(["push", "origin"], in: "ws")
            try s.ok(["clone", s.work + "/remote", s.work + "/clone"], in: "")
            try bigFile(s.work + "/ws/data/big2.bin", seed: 2)
            try smallFiles(s.work + "/ws/data", "v2")
            try s.ok(["add", "data"], in: "ws")
            try s.ok(["commit", "-m", "v2", "--no-env", "--no-code"], in: "ws")
            try s.ok(["push", "origin"], in: "ws")
            return Plan(cwd: "clone", args: ["fetch", "origin"], stores: ["clone/.mlstore"], workspaces: ["clone"])
        case "gc":
            try s.ok(["add", "data"], in: "ws")
            try s.ok(commitArgs, in: "ws")
            // Garbage: a big file and small ones staged, then replaced (their old objects become unreachable).
            try bigFile(s.work + "/ws/junk/big.bin", seed: 3)
            try smallFiles(s.work + "/ws/junk", "junk1")
            try s.ok(["add", "junk"], in: "ws")
            try bigFile(s.work + "/ws/junk/big.bin", seed: 4)
            try smallFiles(s.work + "/ws/junk", "junk2")
            try s.ok(["add", "junk"], in: "ws")
            var p = ws
            p.args = ["gc", "--prune", "now"]
            return p
        default:
            throw TestFailure("unknown scenario \(name)")
        }
    }

    /// Checks the invariants that must hold after any run, failed or not.
    static func checkConsistent(_ s: Scratch, _ plan: Plan, _ context: String) throws {
        for w in plan.workspaces {
            let fsck = try CLI.mlstore(["fsck"], in: s.work + "/" + w)
            #expect(fsck.status == 0, "fsck of \(w) after \(context): \(fsck)")
            let st = try CLI.mlstore(["status"], in: s.work + "/" + w)
            #expect(st.status == 0, "status of \(w) after \(context): \(st)")
        }
        if let remote = plan.remote, FS.exists(s.work + "/" + remote + "/format") {
            let fsck = try CLI.mlstore(["fsck", "--remote", s.work + "/" + remote], in: s.work)
            #expect(fsck.status == 0, "fsck --remote after \(context): \(fsck)")
        }
    }

    static func nValues() -> [Int] {
        if ProcessInfo.processInfo.environment["MLSTORE_FAULTS_EXHAUSTIVE"] == "1" { return Array(1...2000) }
        return [1, 2, 3, 4, 5, 6, 8, 10, 13, 17, 22, 29, 38, 50, 65, 85, 110, 145, 190, 250, 330, 430, 560, 730, 950, 1250, 1600, 2000]
    }

    @Test("ENOSPC, EIO, EINTR and short writes at every write point leave a consistent store",
          arguments: ["add", "commit", "promote", "push", "fetch", "gc"])
    func faults(command: String) throws {
        if command == "gc" {
            let help = try CLI.mlstore(["gc", "--help"], in: "/")
            guard help.status == 0 else {
                print("fault injection: `mlstore gc` does not exist in this build; skipped")
                return
            }
        }
        let s = try Scratch()
        defer { s.tmp.remove() }
        let plan = try Self.setUp(command, s)
        try s.saveBase()
        let before = Dictionary(uniqueKeysWithValues: plan.stores.map { ($0, s.refs($0)) })

        // A clean run: the reference "new" ref values.
        let clean = try CLI.mlstore(plan.args, in: s.work + "/" + plan.cwd, env: Self.env)
        try #require(clean.status == 0, "\(command) without faults: \(clean)")
        try Self.checkConsistent(s, plan, "\(command) without faults")
        let after = Dictionary(uniqueKeysWithValues: plan.stores.map { ($0, s.refs($0)) })

        func checkRefs(_ context: String) {
            for store in plan.stores {
                let now = s.refs(store)
                for (name, value) in now {
                    let old = before[store]?[name], new = after[store]?[name]
                    if value == old || value == new { continue }
                    // A ref the clean run would have set to a time-dependent value: fsck already checked it names an object.
                    if !plan.deterministicRefs && new != nil { continue }
                    Issue.record("\(context): \(store)/\(name) = \(value), neither old (\(old ?? "absent")) nor new (\(new ?? "absent"))")
                }
                for (name, old) in before[store] ?? [:] where now[name] == nil && after[store]?[name] != nil {
                    Issue.record("\(context): \(store)/\(name) (was \(old)) disappeared")
                }
            }
        }

        var injected = 0, runs = 0
        var calls: [String: Int] = [:]
        for rule in Self.failingRules {
            var succeededAt: Int?
            for n in Self.nValues() {
                try s.restore()
                let spec = "\(rule.op):\(rule.errno):\(n)"
                let r = try CLI.mlstore(plan.args, in: s.work + "/" + plan.cwd, env: Self.env.merging(["MLSTORE_FAULTS": spec]) { $1 })
                runs += 1
                let context = "\(command) with MLSTORE_FAULTS=\(spec)"
                if r.status == 0 {
                    succeededAt = n
                    try Self.checkConsistent(s, plan, context)
                    checkRefs(context)
                    break
                }
                injected += 1
                #expect(r.stderr.contains("error:"), "\(context): no `error:` line: \(r)")
                #expect(r.stderr.contains(Self.reasons[rule.errno]!), "\(context): the cause is not named: \(r)")
                #expect(!r.stderr.contains("Fatal error"), "\(context): crashed: \(r)")
                try Self.checkConsistent(s, plan, context)
                checkRefs(context)
            }
            #expect(succeededAt != nil, "\(command): \(rule.op):\(rule.errno) never let the command succeed")
            calls[rule.op] = max(calls[rule.op] ?? 0, (succeededAt ?? 1) - 1)
        }

        // EINTR on every call of every op is retried: the command succeeds with the same result.
        try s.restore()
        let allEINTR = ["open", "read", "write", "fsync", "rename", "link", "unlink", "mkdir", "rmdir", "symlink", "stat", "readdir", "chmod", "truncate"]
            .map { "\($0):EINTR:1+" }.joined(separator: ",")
        let eintr = try CLI.mlstore(plan.args, in: s.work + "/" + plan.cwd, env: Self.env.merging(["MLSTORE_FAULTS": allEINTR]) { $1 })
        #expect(eintr.status == 0, "\(command) with EINTR on every call: \(eintr)")
        try Self.checkConsistent(s, plan, "\(command) with EINTR everywhere")
        if plan.deterministicRefs { #expect(Dictionary(uniqueKeysWithValues: plan.stores.map { ($0, s.refs($0)) }) == after, "EINTR changed the result") }

        // Short writes on every write call: callers continue, the result is identical.
        try s.restore()
        let short = try CLI.mlstore(plan.args, in: s.work + "/" + plan.cwd, env: Self.env.merging(["MLSTORE_FAULTS": "write:SHORT:1+"]) { $1 })
        #expect(short.status == 0, "\(command) with every write short: \(short)")
        try Self.checkConsistent(s, plan, "\(command) with short writes")
        if plan.deterministicRefs { #expect(Dictionary(uniqueKeysWithValues: plan.stores.map { ($0, s.refs($0)) }) == after, "short writes changed the result") }
        if command == "fetch" || command == "add" {
            // The data itself survived: a fresh checkout elsewhere would read it; here, fsck verified every object.
        }
        runs += 2
        print("fault injection \(command): \(runs) runs, \(injected) injected faults that failed the command; calls seen per op (lower bound): \(calls.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
    }
}
