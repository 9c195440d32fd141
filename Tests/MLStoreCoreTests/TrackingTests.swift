import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

@Suite(.serialized) struct TrackingTests {
    init() { fixedIdentity() }

    /// Ten runs with params lr (0.001…0.01), optimizer (adam|sgd), metrics acc (0.80…0.98) and a loss series.
    func history() throws -> (Fixture, [ObjectID]) {
        let f = try Fixture("tracking")
        var ids: [ObjectID] = []
        for i in 0..<10 {
            try TestFiles.write(f.path("model.bin"), "model \(i)")
            _ = try f.ws.add(["model.bin"])
            let params = JSONValue.object(["lr": .number(Double(i + 1) / 1000), "optimizer": .string(i % 2 == 0 ? "adam" : "sgd")])
            let loss = JSONValue.array((0..<5).map { s in .object(["step": .number(Double(s)), "value": .number(1.0 / Double(s + i + 1))]) })
            let metrics = JSONValue.object(["acc": .number(0.80 + Double(i) * 0.02), "loss": loss])
            ids.append(try f.ws.quickCommit("run \(i)", outputs: ["model.bin"], params: params, metrics: metrics))
        }
        let sig = try f.repo.identity()
        try f.repo.refs.update("refs/tags/best", to: ids[9], expecting: .absent, actor: sig, message: "tag")
        try f.repo.promote(model: "m", stage: "production", to: ids[7].hex, reason: "ship")
        return (f, ids)
    }

    @Test func rebuiltIndexEqualsIncremental() throws {
        let (f, _) = try history()
        // Incremental: open after the first commits, then after more.
        let incremental = try TrackingIndex.open(f.repo)
        try TestFiles.write(f.path("extra.txt"), "x")
        _ = try f.ws.add(["extra.txt"])
        _ = try f.ws.quickCommit("later", metrics: .object(["acc": .number(0.5)]))
        try f.repo.promote(model: "m", stage: "staging", to: "HEAD", reason: "try")
        try incremental.sync()
        let a = try incremental.dump()
        let fresh = try TrackingIndex.open(f.repo, sync: false)
        try fresh.rebuild()
        #expect(try fresh.dump() == a)
        #expect(try fresh.count() == 11)
    }

    func ids(_ index: TrackingIndex, _ expr: String) throws -> Set<ObjectID> {
        Set(try index.runs(where: expr, sort: nil, limit: nil, columns: nil).rows.map(\.id))
    }

    @Test func everyOperator() throws {
        let (f, c) = try history()
        let index = try TrackingIndex.open(f.repo)
        #expect(try ids(index, "metrics.acc > 0.9") == Set(c[6...9]))
        #expect(try ids(index, "metrics.acc >= 0.9") == Set(c[5...9]))
        #expect(try ids(index, "metrics.acc < 0.84") == Set(c[0...1]))
        #expect(try ids(index, "metrics.acc <= 0.841") == Set(c[0...2]))
        #expect(try ids(index, "params.lr == 0.003") == [c[2]])
        #expect(try ids(index, "params.lr = 0.003") == [c[2]])
        #expect(try ids(index, "params.lr != 0.003").count == 9)
        #expect(try ids(index, "params.optimizer = sgd") == Set([1, 3, 5, 7, 9].map { c[$0] }))
        #expect(try ids(index, "params.optimizer = 'adam' and metrics.acc > 0.85") == Set([4, 6, 8].map { c[$0] }))
        #expect(try ids(index, "params.optimizer ~ gd") == Set([1, 3, 5, 7, 9].map { c[$0] }))
        #expect(try ids(index, "metrics.loss < 0.1") == Set(c[6...9]))  // last point of the series
        #expect(try ids(index, "tag = best") == [c[9]])
        #expect(try ids(index, "tag != best").count == 9)
        #expect(try ids(index, "stage = production") == [c[7]])
        #expect(try ids(index, "stage = m@production") == [c[7]])
        #expect(try ids(index, "stage = other@production").isEmpty)
        #expect(try ids(index, "author = Ada").count == 10)
        #expect(try ids(index, "author ~ example.com").count == 10)
        #expect(try ids(index, "message ~ 'run 3'") == [c[3]])
        #expect(try ids(index, "id = \(c[4].hex.prefix(10))") == [c[4]])
        #expect(try ids(index, "date > 2000-01-01").count == 10)
        #expect(try ids(index, "date < 2000-01-01T00:00").isEmpty)
        #expect(try ids(index, "not (metrics.acc > 0.9) and (tag = best or params.lr < 0.002)") == [c[0]])
        #expect(try ids(index, "metrics.acc > 0.95 or params.lr < 0.002") == Set([c[0], c[8], c[9]]))
        // Sorting and limits.
        let top = try index.runs(where: "metrics.acc > 0.9", sort: "-metrics.acc", limit: 2, columns: nil)
        #expect(top.rows.map(\.id) == [c[9], c[8]])
        #expect(top.columns == ["metrics.acc"])
        #expect(try index.runs(where: nil, sort: "params.lr", limit: 1, columns: nil).rows.first?.id == c[0])
        // The index-driven path (filter and sort on one key) agrees with the general one.
        let fast = try index.runs(where: "metrics.acc > 0.85 and params.optimizer = adam", sort: "-metrics.acc", limit: nil, columns: nil).rows.map(\.id)
        #expect(fast == [8, 6, 4].map { c[$0] })
        let general = try index.runs(where: "params.optimizer = adam and metrics.acc > 0.85", sort: "-metrics.acc", limit: nil, columns: nil).rows.map(\.id)
        #expect(general == fast)
        #expect(try index.runs(where: "params.lr >= 0.008", sort: "params.lr", limit: nil, columns: nil).rows.map(\.id) == [7, 8, 9].map { c[$0] })
        #expect(try index.runs(where: "metrics.acc > 0.9 or tag = best", sort: "-metrics.acc", limit: 1, columns: nil).rows.map(\.id) == [c[9]])
        #expect(try index.series(c[0], key: "loss").count == 5)
    }

    @Test(arguments: [
        ("metrics.acc >", "a value", 14),
        ("metrics.acc > 0.9 and", "a field", 22),
        ("metrics.acc 0.9", "a comparison operator", 13),
        ("(metrics.acc > 0.9", "')'", 19),
        ("bogus = 1", "a field", 1),
        ("metrics.acc > high", "a number", 15),
        ("metrics.acc > 0.9 tag = x", "'and', 'or'", 19),
        ("tag < x", "= != or ~", 5),
        ("date > yesterday", "a date", 8),
    ])
    func badExpressionsPointAtTheToken(_ expr: String, _ expected: String, _ column: Int) {
        #expect {
            _ = try RunQuery(expr)
        } throws: { e in
            let text = "\(e)"
            return (e as? MLStoreError)?.code == .usage && text.contains(expected) && text.contains("column \(column)")
        }
    }

    @Test func deletedIndexIsRebuiltTransparently() throws {
        let (f, c) = try history()
        _ = try TrackingIndex.open(f.repo)
        for suffix in ["", "-wal", "-shm"] { _ = try Sys.unlink(f.repo.storeDirectory + "/tracking.db" + suffix) }
        let index = try TrackingIndex.open(f.repo)
        #expect(try index.count() == 10)
        #expect(try ids(index, "metrics.acc > 0.97") == [c[9]])
        // A damaged file is replaced, not trusted.
        try TestFiles.write(f.repo.storeDirectory + "/tracking.db", "not a database")
        for suffix in ["-wal", "-shm"] { _ = try Sys.unlink(f.repo.storeDirectory + "/tracking.db" + suffix) }
        #expect(try TrackingIndex.open(f.repo).count() == 10)
    }

    @Test func lineageThroughTheIndex() throws {
        let (f, _) = try LineageGraphTests().chain()
        let index = try TrackingIndex.open(f.repo)
        let head = try #require(try f.repo.headTree())
        let model = try #require(try f.repo.lookup("model.pkl", in: head))
        let producers = try index.producers(of: model.id)
        #expect(producers.count == 1)
        let inputs = try index.artifacts(of: producers[0], role: "input")
        #expect(inputs.map(\.path) == ["data/features.csv"])
        #expect(try index.producers(of: inputs[0].id).count == 1)
    }
}

@Suite struct JSONParserTests {
    @Test func parsesAndRoundTrips() throws {
        let text = #"{"a": [1, -2.5e3, true, false, null], "s": "x\"y\\z\n\u00e9\ud83d\ude00", "o": {}}"#
        let v = try JSONValue.parse(json: Array(text.utf8), what: "t")
        #expect(v["a"]?.array?.count == 5)
        #expect(v["a"]?.array?[1] == .number(-2500))
        #expect(v["s"]?.string == "x\"y\\z\né😀")
        #expect(try JSONValue.parse(json: Array(v.canonical.utf8), what: "t") == v)
    }

    @Test(arguments: ["{", "[1,]", "{\"a\" 1}", "01x", "\"unterminated", "{\"a\":1} trailing", "[1e999]", "\"\\ud800\"", "nul"])
    func rejectsBadJSON(_ text: String) {
        #expect(throws: MLStoreError.self) { _ = try JSONValue.parse(json: Array(text.utf8), what: "t") }
    }
}
