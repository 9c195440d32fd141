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

    /// The chunk pipeline. This thread reads the file in blocks of a few MiB and cuts them; each block
    /// then goes to the whole-file hasher (a serial queue) and, split in parts, to the workers that hash and
    /// encode its chunks. Finished blocks enter the batch in file order, so a file's chunks sit together in
    /// a pack. At most `maxBlocksInFlight` blocks are alive, which bounds memory whatever the file size.
    func importLarge(fd: Int32, path: String, into batch: ObjectBatch?) throws -> ImportedFile {
        final class Whole: @unchecked Sendable {
            let hasher = SHA256()
        }
        /// One block's results: filled by its parts, flushed when the last part finishes.
        final class BlockResult: @unchecked Sendable {
            let ranges: [Range<Int>]
            let results: Slots<(ObjectID, EncodedObject?)>
            let remaining: Atomic<Int>
            init(ranges: [Range<Int>], parts: Int) {
                self.ranges = ranges
                results = Slots(count: ranges.count)
                remaining = Atomic(parts)
            }
        }
        final class Collector: @unchecked Sendable {
            struct State {
                var pending: [Int: BlockResult] = [:]
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
            func finished(_ index: Int, _ block: BlockResult) {
                state.withLock { s in
                    s.pending[index] = block
                    while let b = s.pending.removeValue(forKey: s.next) {
                        if s.error == nil {
                            for i in 0..<b.ranges.count {
                                guard let (id, obj) = b.results[i] else { continue }
                                s.chunks.append(.init(id: id, length: UInt32(b.ranges[i].count)))
                                if let obj, let batch {
                                    do { try batch.add(obj) } catch {
                                        s.error = error
                                        break
                                    }
                                }
                            }
                        }
                        s.next += 1
                        slots.signal()
                    }
                }
            }
            var error: (any Error)? { state.withLock { $0.error } }
        }

        let maxBlocksInFlight = 2 * workerCount + 2
        let slots = DispatchSemaphore(value: maxBlocksInFlight)
        let collector = Collector(batch: batch, slots: slots)
        let whole = Whole()
        let group = DispatchGroup()
        let workers = DispatchQueue.global(qos: .userInitiated)
        let wholeQueue = DispatchQueue(label: "mlstore.whole-file-hash")
        var reader = ChunkBlockReader(fd: fd, path: path, cdc: cdc, blockSize: 4 << 20)
        var blockIndex = 0
        var total: Int64 = 0
        while collector.error == nil, let (bytes, ranges) = try reader.next() {
            total += Int64(ranges.last?.upperBound ?? 0)
            slots.wait()
            let parts = min(workerCount, ranges.count)
            let block = BlockResult(ranges: ranges, parts: parts + 1)
            let index = blockIndex
            blockIndex += 1
            let done: @Sendable () -> Void = {
                if block.remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                    collector.finished(index, block)
                }
            }
            wholeQueue.async(group: group) {
                bytes.withUnsafeBytes { whole.hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<(ranges.last?.upperBound ?? 0)])) }
                done()
            }
            for part in 0..<parts {
                workers.async(group: group) {
                    var i = part
                    while i < ranges.count {
                        let id = bytes.withUnsafeBytes { ObjectID.hash(kind: .blob, payload: UnsafeRawBufferPointer(rebasing: $0[ranges[i]])) }
                        var obj: EncodedObject?
                        if let batch, !batch.contains(id) {
                            obj = ObjectCodec.encodeBlob(bytes, ranges[i], id: id)
                        }
                        block.results[i] = (id, obj)
                        i += parts
                    }
                    done()
                }
            }
        }
        group.wait()
        if let e = collector.error { throw e }
        let chunks = collector.state.withLock { $0.chunks }
        let chunked = ChunkedFile(cdc: cdc, fileSize: total, contentSHA256: whole.hasher.finalize(), chunks: chunks)
        let id = try store(kind: .chunked, payload: chunked.encoded(), batch: batch)
        return ImportedFile(kind: .chunked, id: id, size: total)
    }
}
