import Dispatch
import MLStoreBasics
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a file became in the store.
public struct ImportedFile: Sendable, Equatable {
    public var kind: TreeEntry.Kind
    public var id: ObjectID
    public var size: Int64
}

/// Turns workspace files into objects: small files into one blob, large files into content-defined
/// chunks plus a `chunked` object. Large files are streamed; chunk hashing and compression run on all cores.
public struct FileImporter: Sendable {
    public let cdc: FastCDC
    /// Files larger than this are chunked (spec/objects.md: the maximum chunk size).
    public var chunkThreshold: Int { cdc.maxSize }

    public init(cdc: FastCDC = .standard) { self.cdc = cdc }

    /// Hashes (and, with a batch, stores) the file at `path`, which `stat` describes.
    /// - Parameter batch: where new objects go; nil only computes ids.
    public func importPath(_ path: String, stat: FileStat, into batch: ObjectBatch?) throws -> ImportedFile {
        switch stat.type {
        case .symlink:
            let target = Array(try Sys.readlink(path).utf8)
            let id = try store(kind: .blob, payload: target, batch: batch)
            return ImportedFile(kind: .symlink, id: id, size: Int64(target.count))
        case .regular:
            let fd = try Sys.open(path, O_RDONLY)
            defer { Sys.close(fd) }
            let size = try Sys.fstat(fd, path: path).size
            if size <= Int64(chunkThreshold) {
                var bytes = [UInt8](repeating: 0, count: Int(size) + 1)
                let n = try bytes.withUnsafeMutableBytes { try Sys.readFully(fd, $0.baseAddress!, Int(size) + 1, path: path) }
                if n > Int(size) {
                    throw MLStoreError(.conflict, "\(path) changed while it was being added", hint: "run the command again")
                }
                bytes.removeSubrange(n...)
                let id = try store(kind: .blob, payload: bytes, batch: batch)
                return ImportedFile(kind: .file, id: id, size: Int64(n))
            }
            return try importLarge(fd: fd, path: path, into: batch)
        default:
            throw MLStoreError(.usage, "\(path) is not a regular file, directory or symlink", hint: "mlstore stores files, directories and symlinks only")
        }
    }

    private func store(kind: ObjectKind, payload: [UInt8], batch: ObjectBatch?) throws -> ObjectID {
        guard let batch else { return ObjectID.hash(kind: kind, payload: payload) }
        let id = ObjectID.hash(kind: kind, payload: payload)
        if batch.contains(id) { return id }
        let obj = ObjectCodec.encode(kind: kind, payload: payload)
        try batch.add(obj)
        return obj.id
    }

    /// The chunk pipeline: this thread reads and cuts; a serial queue hashes the whole file; workers hash
    /// and encode chunks; results enter the batch in file order (so a file's chunks sit together in a pack).
    func importLarge(fd: Int32, path: String, into batch: ObjectBatch?) throws -> ImportedFile {
        final class Whole: @unchecked Sendable {
            let hasher = SHA256()
        }
        final class Collector: @unchecked Sendable {
            struct State {
                var pending: [Int: (ObjectID, UInt32, EncodedObject?)] = [:]
                var next = 0
                var chunks: [ChunkedFile.Chunk] = []
                var error: (any Error)?
            }
            let state = Mutex(State())
            let batch: ObjectBatch?
            let slots: DispatchSemaphore
            init(batch: ObjectBatch?, slots: DispatchSemaphore) {
                self.batch = batch
                self.slots = slots
            }
            func put(_ i: Int, _ r: Result<(ObjectID, UInt32, EncodedObject?), any Error>) {
                state.withLock { s in
                    switch r {
                    case .success(let v): s.pending[i] = v
                    case .failure(let e):
                        if s.error == nil { s.error = e }
                        s.pending[i] = (ObjectID(bytes: [UInt8](repeating: 0, count: 32)), 0, nil)
                    }
                    while let (id, len, obj) = s.pending.removeValue(forKey: s.next) {
                        if s.error == nil {
                            s.chunks.append(.init(id: id, length: len))
                            if let obj, let batch {
                                do { try batch.add(obj) } catch { s.error = error }
                            }
                        }
                        s.next += 1
                        slots.signal()
                    }
                }
            }
        }

        let inFlight = 4 * workerCount + 4
        let slots = DispatchSemaphore(value: inFlight)
        let hashSlots = DispatchSemaphore(value: inFlight)
        let collector = Collector(batch: batch, slots: slots)
        let whole = Whole()
        let group = DispatchGroup()
        let workers = DispatchQueue.global(qos: .userInitiated)
        let wholeQueue = DispatchQueue(label: "mlstore.whole-file-hash")
        var reader = ChunkReader(fd: fd, path: path, cdc: cdc)
        var index = 0
        var total: Int64 = 0
        while try reader.next({ chunk in
            let bytes = [UInt8](chunk)
            total += Int64(bytes.count)
            slots.wait()
            hashSlots.wait()
            wholeQueue.async(group: group) {
                whole.hasher.update(bytes)
                hashSlots.signal()
            }
            let i = index
            workers.async(group: group) {
                if let batch {
                    let id = ObjectID.hash(kind: .blob, payload: bytes)
                    let obj: EncodedObject? = batch.contains(id) ? nil : ObjectCodec.encode(kind: .blob, payload: bytes)
                    collector.put(i, .success((id, UInt32(bytes.count), obj)))
                } else {
                    collector.put(i, .success((ObjectID.hash(kind: .blob, payload: bytes), UInt32(bytes.count), nil)))
                }
            }
            index += 1
        }) {
            if collector.state.withLock({ $0.error }) != nil { break }
        }
        group.wait()
        if let e = collector.state.withLock({ $0.error }) { throw e }
        let chunks = collector.state.withLock { $0.chunks }
        let sha = whole.hasher.finalize()
        let chunked = ChunkedFile(cdc: cdc, fileSize: total, contentSHA256: sha, chunks: chunks)
        let id = try store(kind: .chunked, payload: chunked.encoded(), batch: batch)
        return ImportedFile(kind: .chunked, id: id, size: total)
    }
}
