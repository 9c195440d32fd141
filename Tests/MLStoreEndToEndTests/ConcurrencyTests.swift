import Foundation
import Testing

@Suite("concurrent processes")
struct ConcurrencyTests {
    @Test("two adds at once: each succeeds or fails with exit 8 naming index.lock; the store stays consistent")
    func concurrentAdds() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let outDir = try TempDir(prefix: "mlstore-e2e-out")
        defer { outDir.remove() }
        var expected = Set<String>()
        var lockedSeen = 0
        for round in 0..<6 {
            // Different sizes so the two processes overlap in different phases (small: loose, large: pack).
            let a = "a\(round).bin", b = "b\(round).bin"
            try ws.write(a, FS.randomData(count: round.isMultiple(of: 2) ? 1_500_000 : 2_000, seed: UInt64(100 + round)))
            try ws.write(b, FS.randomData(count: 700_000 + round * 100_000, seed: UInt64(200 + round)))
            let pa = try CLI.start(["add", a], in: ws.root, outDir: outDir.path, tag: "a\(round)")
            let pb = try CLI.start(["add", b], in: ws.root, outDir: outDir.path, tag: "b\(round)")
            var succeeded = 0
            for (name, p) in [(a, pa), (b, pb)] {
                let r = p.wait()
                if r.status == 0 {
                    expected.insert(name)
                    succeeded += 1
                } else {
                    #expect(r.status == 8, "add \(name): expected success or exit 8: \(r)")
                    #expect(r.stderr.contains("index.lock"), "add \(name): \(r.stderr)")
                    lockedSeen += 1
                }
            }
            #expect(succeeded >= 1, "round \(round): neither add succeeded")
            #expect(!FS.exists(ws.path(".mlstore/index.lock")), "round \(round): lock file left behind")
        }
        // Every add that reported success is in the index: none was lost to a concurrent writer.
        let staged = Set(try ws.status().stagedPaths)
        #expect(staged == expected, "staged \(staged.sorted()) but successful adds were \(expected.sorted()) (\(lockedSeen) locked)")
        let fsck = try ws.run("fsck")
        #expect(fsck.status == 0, "\(fsck)")
        #expect(!fsck.stdout.contains("leftover"), "\(fsck.stdout)")

        // A stale lock is reported, not broken, and names the lock file.
        try FS.write(ws.path(".mlstore/index.lock"), "")
        try ws.write("late.bin", "late\n")
        let locked = try ws.run("add", "late.bin")
        #expect(locked.status == 8, "\(locked)")
        #expect(locked.stderr.contains("index.lock") && locked.stderr.contains("hint:"), "\(locked.stderr)")
        #expect(FS.exists(ws.path(".mlstore/index.lock")))
        #expect(!(try ws.status().stagedPaths.contains("late.bin")))
        try FS.remove(ws.path(".mlstore/index.lock"))
        #expect(try ws.run("add", "late.bin").status == 0)
    }
}
