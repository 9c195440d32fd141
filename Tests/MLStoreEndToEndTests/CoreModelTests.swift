import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 16: the core model holds off the demo path — stages name model versions, lineage shows data, runs
/// reproduce, the run cache restores every output, and the conventions users bring work.
@Suite("core model: stages hold versions, lineage shows data, reproduce, run cache, conventions")
struct CoreModelTests {
    static let env = author(at: 1_760_000_000)

    /// The files `get` delivered, by path.
    static func files(_ dir: String) -> [String: Data] {
        var out: [String: Data] = [:]
        for rel in FS.listFiles(dir) { out[rel] = FS.read(dir + "/" + rel) }
        return out
    }

    @Test("a stage holds the promoted version: registering v2 (same or another commit) never moves it; promote v2 does")
    func stageHoldsTheVersion() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let env = Self.env
        try ws.write("models/clf/weights.bin", "weights v1\n")
        try ws.write("data/train.csv", "a,b\n1,2\n")
        try ws.ok(env: env, "add", "models", "data")
        try ws.ok(env: env, "commit", "-m", "train", "--input", "data", "--output", "models/clf", "--no-code", "--no-env")
        try ws.ok(env: env, "model", "register", "clf", "HEAD", "-m", "first")
        // Short version names.
        let promoted = try ws.ok(env: env, "promote", "clf", "v1", "--stage", "production", "-m", "ship v1")
        #expect(promoted.contains("v1"), "promote names the version: \(promoted)")
        let logBefore = try ws.ok(env: env, "stage", "log", "clf", "--json")

        // v2 of the same commit, with the whole tree (training data included): the stage must not move.
        try ws.ok(env: env, "model", "register", "clf", "HEAD:.", "-m", "whole tree, same commit")
        // v3 from another commit.
        try ws.write("models/clf/weights.bin", "weights v3\n")
        try ws.ok(env: env, "add", "models")
        try ws.ok(env: env, "commit", "-m", "retrain", "--input", "data", "--output", "models/clf", "--no-code", "--no-env")
        try ws.ok(env: env, "model", "register", "clf", "HEAD", "-m", "third")

        let out1 = ws.path("out1")
        try ws.ok(env: env, "get", ws.root, "clf@production", "-o", out1)
        #expect(Self.files(out1) == ["weights.bin": Data("weights v1\n".utf8)], "production still delivers v1's files only")
        #expect(try ws.ok(env: env, "stage", "log", "clf", "--json") == logBefore, "stage log unchanged by registrations")
        let list = try JSONTools.array(try ws.ok(env: env, "model", "list", "clf", "--json"))
        let stagesOf = Dictionary(uniqueKeysWithValues: list.map { ($0["version"] as? Int ?? 0, $0["stages"] as? [String] ?? []) })
        #expect(stagesOf[1] == ["production"] && stagesOf[2] == [] && stagesOf[3] == [], "model list: \(stagesOf)")
        let stageList = try ws.ok(env: env, "stage", "list")
        #expect(stageList.contains("v1"), "stage list shows the version: \(stageList)")

        // Promote v2 by its full name (the whole tree): now v2, its files.
        try ws.ok(env: env, "promote", "clf", "clf@v2", "--stage", "production", "-m", "try v2")
        let out2 = ws.path("out2")
        try ws.ok(env: env, "get", ws.root, "clf@production", "-o", out2)
        #expect(Self.files(out2)["data/train.csv"] != nil, "v2 is the whole tree")
        let log = try ws.ok(env: env, "stage", "log", "clf")
        #expect(log.contains("v1 (") && log.contains("v2 ("), "stage log shows versions: \(log)")

        // A commit that is a version promotes that version; one that is not is refused with a reason.
        try ws.ok(env: env, "promote", "clf", "HEAD", "--stage", "staging", "-m", "newest")
        let show = try JSONTools.object(try ws.ok(env: env, "model", "show", "clf@staging", "--json"))
        #expect(show["version"] as? Int == 3)
        try ws.write("models/clf/weights.bin", "weights unregistered\n")
        try ws.ok(env: env, "add", "models")
        try ws.ok(env: env, "commit", "-m", "not registered", "--no-code", "--no-env")
        let refused = try ws.run(env: env, "promote", "clf", "HEAD", "--stage", "staging")
        #expect(refused.status == 2 && refused.stderr.contains("not a registered version"), "\(refused)")
        // Rollback returns to the version before, not to "the newest version of that commit".
        try ws.ok(env: env, "rollback", "clf", "--stage", "production", "-m", "back")
        let out3 = ws.path("out3")
        try ws.ok(env: env, "get", ws.root, "clf@production", "-o", out3)
        #expect(Self.files(out3) == ["weights.bin": Data("weights v1\n".utf8)])
        // get through the workspace path as well as the store path.
        #expect(try ws.run(env: env, "fsck").status == 0)
    }
}
