import Dispatch
import MLStoreBasics
import Synchronization

/// A stage of `mlstore.yaml` (spec/pipeline.md).
public struct PipelineStage: Sendable, Equatable {
    public var name: String
    /// Shell commands, run in order with `sh -c` in the workspace root (or `wdir`).
    public var commands: [String]
    public var deps: [String]
    /// (params file, dotted key) pairs.
    public var params: [ParamRef]
    public var outs: [String]
    public var metrics: [String]
    public var wdir: String

    public struct ParamRef: Sendable, Equatable, Hashable {
        public var file: String
        public var key: String
    }
}

/// A pipeline: stages forming a DAG through their outs and deps.
public struct Pipeline: Sendable {
    public static let fileName = "mlstore.yaml"
    public static let defaultParamsFile = "params.yaml"
    public var stages: [PipelineStage]

    /// Parses and validates `mlstore.yaml`: stage fields, paths, one producer per output, no cycles,
    /// and every dependency either produced by a stage or present in the workspace.
    public static func load(workspace: Workspace) throws -> Pipeline {
        let file = workspace.absolute(fileName)
        guard (try Sys.lstatIfExists(file)) != nil else {
            throw MLStoreError(.notFound, "no \(fileName) in \(workspace.root)", hint: "declare stages in \(fileName) (see spec/pipeline.md)")
        }
        let doc = try JSONValue.load(file: file, what: fileName)
        guard let stagesValue = doc["stages"]?.object, !stagesValue.isEmpty else {
            throw MLStoreError(.usage, "\(fileName) has no stages", hint: "write `stages:` with at least one named stage")
        }
        var stages: [PipelineStage] = []
        for name in stagesValue.keys.sorted() {
            let v = stagesValue[name]!
            func bad(_ why: String) -> MLStoreError { MLStoreError(.usage, "\(fileName): stage '\(name)': \(why)") }
            guard let o = v.object else { throw bad("must be a mapping") }
            for k in o.keys where !["cmd", "deps", "params", "outs", "metrics", "wdir", "desc"].contains(k) {
                throw bad("unknown field '\(k)' (fields: cmd, deps, params, outs, metrics, wdir, desc)")
            }
            guard name.range(of: #"^[A-Za-z0-9_.-]+$"#, options: .regularExpression) != nil else { throw bad("names use letters, digits, '_', '.', '-'") }
            func strings(_ key: String) throws -> [String] {
                switch o[key] {
                case nil: return []
                case .string(let s)?: return [s]
                case .array(let a)?:
                    return try a.map {
                        guard let s = $0.string else { throw bad("'\(key)' must list strings") }
                        return s
                    }
                default: throw bad("'\(key)' must be a string or a list of strings")
                }
            }
            let commands = try strings("cmd")
            guard !commands.isEmpty else { throw bad("has no cmd") }
            var params: [PipelineStage.ParamRef] = []
            for item in o["params"]?.array ?? (o["params"] == nil ? [] : [o["params"]!]) {
                switch item {
                case .string(let k): params.append(.init(file: defaultParamsFile, key: k))
                case .object(let m):
                    for (f, keys) in m {
                        guard let list = keys.array else { throw bad("params from \(f) must be a list of keys") }
                        for k in list {
                            guard let ks = k.string else { throw bad("params keys must be strings") }
                            params.append(.init(file: f, key: ks))
                        }
                    }
                default: throw bad("'params' items are keys (from params.yaml) or {file: [keys]}")
                }
            }
            let stage = PipelineStage(name: name, commands: commands, deps: try strings("deps"), params: params,
                                      outs: try strings("outs"), metrics: try strings("metrics"), wdir: o["wdir"]?.string ?? "")
            for p in stage.deps + stage.outs + stage.metrics + stage.params.map(\.file) + (stage.wdir.isEmpty ? [] : [stage.wdir]) {
                do { try Workspace.validateRelative(Self.normalize(p)) } catch let e as MLStoreError { throw bad(e.message) }
            }
            stages.append(stage)
        }
        let pipeline = Pipeline(stages: stages)
        try pipeline.validate(workspace: workspace)
        return pipeline
    }

    static func normalize(_ p: String) -> String {
        var s = p
        while s.hasPrefix("./") { s.removeFirst(2) }
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }

    /// The stage that produces a path (an out equal to it or containing it).
    public func producer(of path: String) -> PipelineStage? {
        let p = Self.normalize(path)
        return stages.first { s in s.outs.map(Self.normalize).contains { p == $0 || p.hasPrefix($0 + "/") } }
    }

    /// Direct upstream stages of a stage.
    public func upstream(of stage: PipelineStage) -> [PipelineStage] {
        var seen = Set<String>()
        return stage.deps.compactMap { producer(of: $0) }.filter { $0.name != stage.name && seen.insert($0.name).inserted }
    }

    func validate(workspace: Workspace) throws {
        var owner: [String: String] = [:]
        for s in stages {
            for o in s.outs.map(Self.normalize) {
                if let other = owner[o] {
                    throw MLStoreError(.usage, "\(Self.fileName): '\(o)' is an output of both '\(other)' and '\(s.name)'")
                }
                owner[o] = s.name
            }
        }
        for s in stages {
            for d in s.deps where producer(of: d) == nil {
                if (try Sys.lstatIfExists(workspace.absolute(Self.normalize(d)))) == nil {
                    throw MLStoreError(.notFound, "\(Self.fileName): stage '\(s.name)' depends on '\(d)', which does not exist and no stage produces",
                                       hint: "create it, add the stage that makes it, or fix the path")
                }
            }
            if let d = s.deps.first(where: { producer(of: $0)?.name == s.name }) {
                throw MLStoreError(.usage, "\(Self.fileName): stage '\(s.name)' depends on its own output '\(d)'")
            }
        }
        _ = try order()
    }

    /// Stages in dependency order (Kahn's algorithm); a cycle is an error naming its stages.
    public func order(target: String? = nil) throws -> [PipelineStage] {
        var wanted = Set(stages.map(\.name))
        if let target {
            guard let t = stages.first(where: { $0.name == target }) else {
                throw MLStoreError(.notFound, "no stage named '\(target)' in \(Self.fileName)", hint: "stages: " + stages.map(\.name).joined(separator: ", "))
            }
            wanted = [t.name]
            var queue = [t]
            while let s = queue.popLast() {
                for u in upstream(of: s) where wanted.insert(u.name).inserted { queue.append(u) }
            }
        }
        var indegree: [String: Int] = [:]
        for s in stages where wanted.contains(s.name) { indegree[s.name] = upstream(of: s).filter { wanted.contains($0.name) }.count }
        var ready = indegree.filter { $0.value == 0 }.map(\.key).sorted()
        var out: [PipelineStage] = []
        while let name = ready.first {
            ready.removeFirst()
            let s = stages.first { $0.name == name }!
            out.append(s)
            for d in stages where wanted.contains(d.name) && upstream(of: d).contains(where: { $0.name == name }) {
                indegree[d.name]! -= 1
                if indegree[d.name] == 0 { ready.append(d.name); ready.sort() }
            }
        }
        if out.count < indegree.count {
            let cyclic = indegree.filter { $0.value > 0 }.map(\.key).sorted()
            throw MLStoreError(.usage, "\(Self.fileName) has a dependency cycle through stages: \(cyclic.joined(separator: ", "))",
                               hint: "a stage cannot depend, directly or through others, on its own outputs")
        }
        return out
    }

    // MARK: Rendering

    public func text() throws -> String {
        var out = ""
        for s in try order() {
            let up = upstream(of: s).map(\.name)
            out += "\(s.name)\(up.isEmpty ? "" : "  ← " + up.joined(separator: ", "))\n"
            out += "    $ \(s.commands.joined(separator: " && "))\n"
        }
        return out
    }

    public func dot() throws -> String {
        var out = "digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n"
        for s in try order() {
            out += "  \"\(s.name)\";\n"
            for u in upstream(of: s) { out += "  \"\(u.name)\" -> \"\(s.name)\";\n" }
        }
        return out + "}\n"
    }

    public func mermaid() throws -> String {
        var out = "graph LR\n"
        for s in try order() {
            out += "  \(s.name.replacingOccurrences(of: "-", with: "_"))[\"\(s.name)\"]\n"
            for u in upstream(of: s) { out += "  \(u.name.replacingOccurrences(of: "-", with: "_")) --> \(s.name.replacingOccurrences(of: "-", with: "_"))\n" }
        }
        return out
    }
}
