import MLStoreBasics
import Synchronization

/// The references between objects (spec/remote.md §Reachability): what must travel with an object.
public enum ObjectGraph {
    /// Whether an object holds file content (blobs of files, chunked files and their chunks) rather than
    /// metadata; partial fetches skip content until it is needed.
    public enum Edge: Sendable { case metadata, content }

    /// The kinds of a tree's or chunked file's children, which those objects name (empty for other kinds or
    /// an undecodable payload). Lets a remote walk the graph without reading file contents.
    public static func childKinds(kind: ObjectKind, payload: [UInt8], id: ObjectID) -> [(ObjectID, ObjectKind)] {
        switch kind {
        case .tree: (try? Tree(decoding: payload, id: id))?.entries.map { ($0.id, $0.kind.objectKind) } ?? []
        case .chunked: (try? ChunkedFile(decoding: payload, id: id))?.chunks.map { ($0.id, .blob) } ?? []
        default: []
        }
    }

    /// Kinds a network remote learned from the trees and chunked files it read, so walking the graph needs
    /// no request per file. (Each object is still verified against its id when it is read.) Bounded.
    final class KindHints: @unchecked Sendable {
        private let map = Mutex<[ObjectID: ObjectKind]>([:])

        subscript(id: ObjectID) -> ObjectKind? { map.withLock { $0[id] } }

        func learn(from kind: ObjectKind, payload: [UInt8], id: ObjectID) {
            let learned = childKinds(kind: kind, payload: payload, id: id)
            guard !learned.isEmpty else { return }
            map.withLock { m in
                if m.count > 4_000_000 { m.removeAll() }
                for (i, k) in learned { m[i] = k }
            }
        }
    }

    /// The objects `payload` (of `kind`) refers to, with whether each is content or metadata.
    /// `readJSON` reads an env blob (to find lock-file blobs it names).
    public static func children(kind: ObjectKind, payload: [UInt8], id: ObjectID, readJSON: (ObjectID) throws -> JSONValue?) throws
        -> [(id: ObjectID, edge: Edge)]
    {
        switch kind {
        case .blob:
            return []
        case .chunked:
            return try ChunkedFile(decoding: payload, id: id).chunks.map { ($0.id, .content) }
        case .tree:
            return try Tree(decoding: payload, id: id).entries.map { ($0.id, $0.kind == .directory || $0.kind == .symlink ? .metadata : .content) }
        case .commit:
            let c = try Commit(decoding: payload, id: id)
            var out: [(ObjectID, Edge)] = [(c.tree, .metadata)]
            out += c.parents.map { ($0, .metadata) }
            // Inputs and outputs are files or subtrees; a subtree is metadata, a file is content.
            out += (c.inputs + c.outputs).map { ($0.id, .content) }
            for m in [c.params, c.metrics, c.env].compactMap({ $0 }) { out.append((m, .metadata)) }
            if let code = c.code {
                out.append((code.tree, .metadata))
                if let d = code.dirtyPatch { out.append((d, .metadata)) }
            }
            if let env = c.env, let record = try readJSON(env), let locks = record["lock_files"]?.object {
                for v in locks.values { if let s = v.string, let lid = ObjectID(hex: s) { out.append((lid, .metadata)) } }
            }
            return out
        case .tag:
            return [(try TagObject(decoding: payload, id: id).object, .metadata)]
        case .stage:
            let r = try StageRecord(decoding: payload, id: id)
            return [r.target, r.version, r.previous].compactMap { $0 }.map { ($0, .metadata) }
        case .model:
            // The commit, the artifacts (files or subtrees of the commit's tree), the signature, the chain.
            let v = try ModelVersion(decoding: payload, id: id)
            var out: [(ObjectID, Edge)] = [(v.commit, .metadata)]
            out += v.artifacts.map { ($0.id, .content) }
            for m in [v.signature, v.previous].compactMap({ $0 }) { out.append((m, .metadata)) }
            return out
        }
    }
}
