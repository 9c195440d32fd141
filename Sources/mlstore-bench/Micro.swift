import Dispatch
import Foundation
import MLStoreBasics
import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// One in-process micro-benchmark: throughput of a library building block on seeded in-memory data.
struct MicroResult {
    var name: String
    var input: String
    var bytes: Int
    var times: [Double]
    var note: String = ""
    var extra: [String: Any] = [:]

    var medianSeconds: Double { median(times) }
    /// Decimal megabytes (10^6 bytes) per second, over the median run.
    var mbPerSecond: Double { Double(bytes) / medianSeconds / 1e6 }

    var json: [String: Any] {
        var j: [String: Any] = [
            "name": name, "input": input, "bytes": bytes, "times_s": times.map { ($0 * 1e6).rounded() / 1e6 },
            "median_s": (medianSeconds * 1e6).rounded() / 1e6, "mb_per_s": (mbPerSecond * 10).rounded() / 10,
            "note": note,
        ]
        for (k, v) in extra { j[k] = v }
        return j
    }
}

/// Dedup of version 2 of a model against version 1 for one chunker configuration.
struct DedupResult {
    var label: String
    var cdc: FastCDC
    var fileBytes: Int
    var changedBytes: Int
    var chunksV1: Int
    var chunksV2: Int
    var newChunks: Int
    var newChunkBytes: Int
    /// Size of the v2 `chunked` object (spec/objects.md §6: 64 bytes + 36 per chunk), stored again too.
    var metadataBytes: Int
    var seconds: Double

    var addedBytes: Int { newChunkBytes + metadataBytes }
    var addedPercent: Double { Double(addedBytes) * 100 / Double(fileBytes) }
    var overheadPerEdit: Double { Double(newChunkBytes - changedBytes) }

    var json: [String: Any] {
        [
            "label": label, "min": cdc.minSize, "avg": cdc.avgSize, "max": cdc.maxSize, "level": cdc.level,
            "file_bytes": fileBytes, "changed_bytes": changedBytes, "chunks_v1": chunksV1, "chunks_v2": chunksV2,
            "new_chunks": newChunks, "new_chunk_bytes": newChunkBytes, "chunk_list_bytes": metadataBytes,
            "added_bytes": addedBytes, "added_percent_of_file": (addedPercent * 1000).rounded() / 1000,
            "seconds": (seconds * 1000).rounded() / 1000,
        ]
    }
}

/// A raw pointer that may cross to worker threads (each thread writes distinct indices).
struct SendablePointer<T>: @unchecked Sendable {
    let p: UnsafeMutablePointer<T>
}
struct SendableRaw: @unchecked Sendable {
    let p: UnsafeRawBufferPointer
}

struct MicroBench {
    let quick: Bool
    let runs: Int
    let scratchDirectory: String

    var bufferBytes: Int { quick ? 32 << 20 : 256 << 20 }
    var csvBytes: Int { quick ? 8 << 20 : 64 << 20 }
    var zlibFloatBytes: Int { quick ? 4 << 20 : 32 << 20 }
    var importBytes: Int { quick ? 32 << 20 : 256 << 20 }
    var diskBytes: Int { quick ? 32 << 20 : 256 << 20 }
    var dedupModelBytes: Int { quick ? 64 << 20 : 1 << 30 }
    let regions = 4
    let regionBytes = 5 << 19  // 2.5 MiB, as in the issue and bench/external.sh

    func log(_ s: String) { stderrPrint("== micro: " + s) }

    func run() throws -> (results: [MicroResult], dedup: [DedupResult]) {
        var results: [MicroResult] = []
        log("generating \(human(Double(bufferBytes))) of seeded float32 weights")
        let weights = SeededData.float32Weights(bytes: bufferBytes, seed: 1)
        let csv = SeededData.csv(bytes: csvBytes, seed: 42)
        let bufLabel = human(Double(bufferBytes)) + " float32"

        log("SHA-256")
        results.append(weights.withUnsafeBytes { buf in
            MicroResult(
                name: "SHA-256, 1 thread", input: bufLabel, bytes: buf.count,
                times: timeRuns(runs) { _ = SHA256.hash(buf) }, note: "OpenSSL EVP (MLStoreBasics.SHA256)")
        })
        let threads = workerCount
        results.append(weights.withUnsafeBytes { buf in
            let raw = SendableRaw(p: buf)
            let part = buf.count / threads
            let r = MicroResult(
                name: "SHA-256, \(threads) threads", input: "\(threads) × \(human(Double(part)))", bytes: part * threads,
                times: timeRuns(runs) {
                    DispatchQueue.concurrentPerform(iterations: threads) { t in
                        _ = SHA256.hash(UnsafeRawBufferPointer(rebasing: raw.p[(t * part)..<((t + 1) * part)]))
                    }
                })
            return r
        })
        let scaling = results[1].mbPerSecond / results[0].mbPerSecond
        results[1].note = "\(fmt(scaling, 2))× one thread (nproc \(threads))"
        results[1].extra["scaling_vs_one_thread"] = (scaling * 100).rounded() / 100

        log("FastCDC")
        let cdc = FastCDC.standard
        var chunkCount = 0
        let cdcTimes = weights.withUnsafeBytes { buf in
            timeRuns(runs) { chunkCount = cdc.chunks(of: buf).count }
        }
        results.append(MicroResult(
            name: "FastCDC cut (16/64/256 KiB, level 2)", input: bufLabel, bytes: weights.count, times: cdcTimes,
            note: "\(chunkCount) chunks, mean \(human(Double(weights.count / max(1, chunkCount))))",
            extra: ["chunks": chunkCount]))

        log("zlib")
        results.append(zlibBench(csv, label: human(Double(csv.count)) + " CSV", what: "CSV text"))
        let floatSample = Array(weights[0..<zlibFloatBytes])
        results.append(zlibBench(floatSample, label: human(Double(floatSample.count)) + " float32", what: "float32"))

        log("entropy probe")
        results.append(entropyBench(weights, label: bufLabel, what: "float32"))
        results.append(entropyBench(csv, label: human(Double(csv.count)) + " CSV", what: "CSV"))

        log("SHA-256 of every 64 KiB chunk (ObjectID.hash)")
        results.append(weights.withUnsafeBytes { buf in
            MicroResult(
                name: "ObjectID.hash per 64 KiB chunk, 1 thread", input: bufLabel, bytes: buf.count,
                times: timeRuns(runs) {
                    var off = 0
                    while off < buf.count {
                        let n = min(65536, buf.count - off)
                        _ = ObjectID.hash(kind: .blob, payload: UnsafeRawBufferPointer(rebasing: buf[off..<(off + n)]))
                        off += n
                    }
                }, note: "a fresh EVP context per object")
        })

        log("FileImporter hash-only and disk")
        results.append(try importBench())
        results.append(try diskBench())

        log("dedup: 64 KiB vs 256 KiB average chunk size")
        let dedup = dedupComparison()
        return (results, dedup)
    }

    func zlibBench(_ data: [UInt8], label: String, what: String) -> MicroResult {
        var compressed = 0
        let times = data.withUnsafeBytes { buf in
            timeRuns(runs, warmup: 0) {
                compressed = 0
                var off = 0
                while off < buf.count {
                    let n = min(65536, buf.count - off)
                    compressed += Zlib.compress(UnsafeRawBufferPointer(rebasing: buf[off..<(off + n)]), level: 1)?.count ?? n
                    off += n
                }
            }
        }
        let ratio = Double(compressed) / Double(data.count)
        let kept = ratio <= ObjectCodec.keepRatio ? "kept" : "not kept: over \(Int(ObjectCodec.keepRatio * 100)) %, stored identity"
        return MicroResult(
            name: "zlib level 1, \(what), 64 KiB pieces", input: label, bytes: data.count, times: times,
            note: "compressed to \(fmt(ratio * 100, 1)) % (\(kept))", extra: ["compressed_fraction": (ratio * 10000).rounded() / 10000])
    }

    func entropyBench(_ data: [UInt8], label: String, what: String) -> MicroResult {
        var sum = 0.0, n = 0
        let times = data.withUnsafeBytes { buf in
            timeRuns(runs) {
                sum = 0
                n = 0
                var off = 0
                while off < buf.count {
                    let len = min(65536, buf.count - off)
                    sum += Entropy.bitsPerByte(UnsafeRawBufferPointer(rebasing: buf[off..<(off + len)]))
                    n += 1
                    off += len
                }
            }
        }
        let bits = sum / Double(max(1, n))
        let perCall = median(times) / Double(max(1, n)) * 1e6
        let verdict = bits >= ObjectCodec.entropyThreshold ? "identity" : "try zlib"
        return MicroResult(
            name: "entropy probe, \(what), per 64 KiB chunk", input: label, bytes: data.count, times: times,
            note: "\(fmt(bits, 2)) bits/byte → \(verdict); \(fmt(perCall, 1)) µs per chunk (4 KiB sampled)",
            extra: ["bits_per_byte": (bits * 1000).rounded() / 1000, "us_per_chunk": (perCall * 100).rounded() / 100])
    }

    /// FileImporter on a temp file without a store: the whole `add` pipeline minus writing (read, cut, two
    /// SHA-256 passes: chunks and whole file), warm page cache.
    func importBench() throws -> MicroResult {
        let path = scratchDirectory + "/import-\(getpid()).bin"
        let data = SeededData.float32Weights(bytes: importBytes, seed: 7)
        let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC)
        try Sys.write(fd, data, path: path)
        Sys.close(fd)
        defer { _ = try? Sys.unlink(path) }
        let importer = FileImporter()
        var id = ""
        let times = try timeRuns(runs) {
            id = try importer.importPath(path, stat: try Sys.lstat(path), into: nil).id.short
        }
        return MicroResult(
            name: "FileImporter hash-only (no store)", input: human(Double(importBytes)) + " file, warm cache",
            bytes: importBytes, times: times, note: "read + cut + chunk SHA + whole-file SHA on \(workerCount) cores (\(id))")
    }

    /// Sequential write of seeded data then fsync, as a store's pack write does.
    func diskBench() throws -> MicroResult {
        let path = scratchDirectory + "/disk-\(getpid()).bin"
        let data = SeededData.float32Weights(bytes: 4 << 20, seed: 9)
        defer { _ = try? Sys.unlink(path) }
        let times = try timeRuns(runs, warmup: 0) {
            let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC)
            defer { Sys.close(fd) }
            var written = 0
            while written < diskBytes {
                try Sys.write(fd, data, path: path)
                written += data.count
            }
            try Sys.fsync(fd, path: path)
        }
        return MicroResult(
            name: "disk: write + fsync", input: human(Double(diskBytes)) + " in 4 MiB writes", bytes: diskBytes,
            times: times, note: "work directory's file system")
    }

    func dedupComparison() -> [DedupResult] {
        let v1 = SeededData.float32Weights(bytes: dedupModelBytes, seed: 11)
        let (v2, _) = SeededData.modify(v1, regions: regions, regionBytes: regionBytes, seed: 12)
        let configs: [(String, FastCDC)] = [
            ("64 KiB avg (16K/64K/256K, mlstore)", FastCDC(minSize: 16 << 10, avgSize: 64 << 10, maxSize: 256 << 10, level: 2)),
            ("256 KiB avg (64K/256K/1M)", FastCDC(minSize: 64 << 10, avgSize: 256 << 10, maxSize: 1 << 20, level: 2)),
        ]
        return configs.map { label, cdc in
            let t0 = now()
            let a = chunkIDs(v1, cdc)
            let b = chunkIDs(v2, cdc)
            var seen = Set(a.map(\.id))
            var newChunks = 0, newBytes = 0
            for c in b where seen.insert(c.id).inserted {
                newChunks += 1
                newBytes += c.length
            }
            return DedupResult(
                label: label, cdc: cdc, fileBytes: v1.count, changedBytes: regions * regionBytes, chunksV1: a.count,
                chunksV2: b.count, newChunks: newChunks, newChunkBytes: newBytes, metadataBytes: 64 + 36 * b.count,
                seconds: now() - t0)
        }
    }

    /// Chunk ids of `data` (cut on this thread, hashed on all cores).
    func chunkIDs(_ data: [UInt8], _ cdc: FastCDC) -> [(id: ObjectID, length: Int)] {
        data.withUnsafeBytes { buf in
            let cuts = cdc.chunks(of: buf)
            let starts: [Int] = {
                var starts: [Int] = []
                starts.reserveCapacity(cuts.count)
                var off = 0
                for c in cuts {
                    starts.append(off)
                    off += c.length
                }
                return starts
            }()
            let zero = ObjectID(bytes: [UInt8](repeating: 0, count: 32))
            var ids = [ObjectID](repeating: zero, count: cuts.count)
            let raw = SendableRaw(p: buf)
            let lengths = cuts.map(\.length)
            ids.withUnsafeMutableBufferPointer { out in
                let o = SendablePointer(p: out.baseAddress!)
                let n = cuts.count, workers = workerCount
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    var i = w
                    while i < n {
                        o.p[i] = ObjectID.hash(kind: .blob, payload: UnsafeRawBufferPointer(rebasing: raw.p[starts[i]..<(starts[i] + lengths[i])]))
                        i += workers
                    }
                }
            }
            return zip(ids, lengths).map { ($0, $1) }
        }
    }
}
