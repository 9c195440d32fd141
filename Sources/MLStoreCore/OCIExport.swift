import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// Formats of `mlstore export`.
public enum ModelExportFormat: String, Sendable, CaseIterable {
    /// An OCI image layout directory (spec/models.md §OCI image layout).
    case oci
    /// A plain tar archive: `mlstore-model.json` then the model's files.
    case tar
}

/// Media types and annotation keys of mlstore's OCI artifacts.
public enum OCI {
    public static let layoutVersion = "1.0.0"
    public static let indexMediaType = "application/vnd.oci.image.index.v1+json"
    public static let manifestMediaType = "application/vnd.oci.image.manifest.v1+json"
    public static let artifactType = "application/vnd.mlstore.model.v1"
    public static let configMediaType = "application/vnd.mlstore.model.config.v1+json"
    public static let layerMediaType = "application/octet-stream"
    public static let titleAnnotation = "org.opencontainers.image.title"
    public static let refNameAnnotation = "org.opencontainers.image.ref.name"
    public static let modeAnnotation = "vnd.mlstore.file.mode"

    /// An OCI reference name (a tag-like string): letters, digits and `- . _ : @ + /`, starting and
    /// ending with a letter or digit, at most 128 characters.
    public static func isRefName(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 128, let f = s.unicodeScalars.first, let l = s.unicodeScalars.last else { return false }
        func alnum(_ c: Unicode.Scalar) -> Bool { c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c)) }
        return alnum(f) && alnum(l) && s.unicodeScalars.allSatisfy { alnum($0) || "-._:@+/".unicodeScalars.contains($0) }
    }

    static func descriptor(mediaType: String, sha256: [UInt8], size: Int64, annotations: [String: String] = [:], artifactType: String? = nil) -> JSONValue {
        var d: [String: JSONValue] = ["mediaType": .string(mediaType), "digest": .string("sha256:" + Hex.encode(sha256)), "size": .number(Double(size))]
        if let artifactType { d["artifactType"] = .string(artifactType) }
        if !annotations.isEmpty { d["annotations"] = .object(annotations.mapValues { .string($0) }) }
        return .object(d)
    }
}

extension Repository {
    /// `mlstore export`: writes `<name>@<stage|vN>` from the local store as an OCI image layout (a
    /// directory) or a tar archive (a file). The output is staged next to `output` and renamed into place,
    /// so a failure leaves nothing behind; an existing output is replaced only with `force`.
    /// Identical versions export to identical bytes (times come from the version, not the clock).
    public func exportModel(_ spec: String, format: ModelExportFormat, output: String, force: Bool = false, refName: String? = nil,
                            progress: ProgressReporter? = nil) throws -> ModelOutputReport {
        let source = ModelSource.local(self)
        let selection = try source.resolve(try ModelSpec(parsing: spec))
        try fetchMissingContent(selection.files.map { ($0.treePath, $0.entry) }, progress: progress)
        switch format {
        case .oci: return try Self.exportOCI(selection, source: source, output: output, force: force, refName: refName, progress: progress)
        case .tar: return try Self.exportTar(selection, source: source, output: output, force: force, progress: progress)
        }
    }

    /// The time recorded for exported files: the version's registration, else the commit's.
    static func exportTime(_ s: ModelSelection, source: ModelSource) throws -> Int64 {
        if let v = s.version { return v.author.time }
        return try source.commit(s.commit).committer.time
    }

    static func baseReport(_ s: ModelSelection, source: ModelSource, output: String, format: String) -> ModelOutputReport {
        ModelOutputReport(source: source.location, request: s.spec.description, model: s.name, version: s.version?.version,
                          versionId: s.versionID?.hex, stage: s.stage, commit: s.commit.hex, output: output, format: format)
    }

    static func exportOCI(_ s: ModelSelection, source: ModelSource, output: String, force: Bool, refName: String?,
                          progress: ProgressReporter?) throws -> ModelOutputReport {
        if let link = s.files.first(where: { $0.entry.kind == .symlink }) {
            throw MLStoreError(.usage, "'\(link.path)' is a symlink, which an OCI layer cannot carry", hint: "export with --format tar, or register the file it points to")
        }
        let ref = refName ?? s.version.map { "v\($0.version)" } ?? s.stage ?? "latest"
        guard OCI.isRefName(ref) else {
            throw MLStoreError(.usage, "'\(ref)' is not a valid OCI reference name", hint: "use letters, digits and - . _ : @ + /, starting and ending with a letter or digit")
        }
        let plan = try source.prepareContent(s.files)
        var digests: [String: [UInt8]] = [:]
        for f in s.files { digests[f.path] = try source.contentDigest(f, plan: plan) }
        let staged = try StagedOutput(target: output, force: force, directory: true)
        var report = baseReport(s, source: source, output: staged.target, format: "oci")
        do {
            let writer = try SafeWriter(root: staged.temp)
            func writeBlob(_ bytes: [UInt8]) throws -> [UInt8] {
                let sha = SHA256.hash(bytes)
                _ = try writer.writeFile("blobs/sha256/" + Hex.encode(sha), mode: 0o644) { emit in try bytes.withUnsafeBytes { try emit($0) } }
                return sha
            }
            progress?.begin("export", totalBytes: s.totalSize)
            defer { progress?.end() }
            var written = Set<[UInt8]>()
            var layers: [JSONValue] = []
            for f in s.files {
                let sha = digests[f.path]!
                if written.insert(sha).inserted {
                    var got: [UInt8] = []
                    _ = try writer.writeFile("blobs/sha256/" + Hex.encode(sha), mode: 0o644) { emit in
                        got = try source.streamContent(f, plan: plan, progress: progress, emit: emit)
                    }
                    guard got == sha else {
                        throw MLStoreError.corruptObject(f.entry.id.hex, "the content of '\(f.treePath)' does not match its recorded SHA-256")
                    }
                } else {
                    progress?.advance(bytes: f.entry.size)
                }
                layers.append(OCI.descriptor(mediaType: OCI.layerMediaType, sha256: sha, size: f.entry.size,
                                             annotations: [OCI.titleAnnotation: f.path, OCI.modeAnnotation: String(f.entry.mode, radix: 8)]))
                report.files.append(.init(path: f.path, size: f.entry.size, sha256: Hex.encode(sha), mode: String(f.entry.mode, radix: 8)))
                report.bytes += f.entry.size
            }
            let manifest = try source.manifestJSON(s, digests: digests)
            let config = Array(manifest.canonical.utf8)
            let configSHA = try writeBlob(config)
            var annotations: [String: String] = [
                OCI.titleAnnotation: s.name, "org.opencontainers.image.revision": s.commit.hex,
                "org.opencontainers.image.created": ModelSource.rfc3339(try exportTime(s, source: source)),
            ]
            if let v = s.version, let id = s.versionID {
                annotations["org.opencontainers.image.version"] = "v\(v.version)"
                annotations["vnd.mlstore.model.id"] = id.hex
                if !v.subject.isEmpty { annotations["org.opencontainers.image.description"] = v.subject }
            }
            let image: JSONValue = .object([
                "schemaVersion": .number(2),
                "mediaType": .string(OCI.manifestMediaType),
                "artifactType": .string(OCI.artifactType),
                "config": OCI.descriptor(mediaType: OCI.configMediaType, sha256: configSHA, size: Int64(config.count)),
                "layers": .array(layers),
                "annotations": .object(annotations.mapValues { .string($0) }),
            ])
            let imageBytes = Array(image.canonical.utf8)
            let imageSHA = try writeBlob(imageBytes)
            let index: JSONValue = .object([
                "schemaVersion": .number(2),
                "mediaType": .string(OCI.indexMediaType),
                "manifests": .array([OCI.descriptor(mediaType: OCI.manifestMediaType, sha256: imageSHA, size: Int64(imageBytes.count),
                                                    annotations: [OCI.refNameAnnotation: ref], artifactType: OCI.artifactType)]),
            ])
            _ = try writer.writeFile("index.json", mode: 0o644) { emit in try Array(index.canonical.utf8).withUnsafeBytes { try emit($0) } }
            let layout = Array(#"{"imageLayoutVersion":"\#(OCI.layoutVersion)"}"#.utf8)
            _ = try writer.writeFile("oci-layout", mode: 0o644) { emit in try layout.withUnsafeBytes { try emit($0) } }
            report.manifest = manifest
            report.manifestDigest = "sha256:" + Hex.encode(imageSHA)
            report.refName = ref
            try staged.publish()
        } catch {
            staged.discard()
            throw error
        }
        return report
    }

    /// The name of the manifest inside a tar export.
    public static let tarManifestName = "mlstore-model.json"

    static func exportTar(_ s: ModelSelection, source: ModelSource, output: String, force: Bool, progress: ProgressReporter?) throws -> ModelOutputReport {
        if s.files.contains(where: { $0.path == tarManifestName }) {
            throw MLStoreError(.usage, "the model has a file named \(tarManifestName), which the tar format uses for its manifest", hint: "export with --format oci")
        }
        let plan = try source.prepareContent(s.files)
        var digests: [String: [UInt8]] = [:]
        var links: [String: String] = [:]
        for f in s.files {
            if f.entry.kind == .symlink {
                let target = try source.readObject(f.entry.id, .blob)
                links[f.path] = String(decoding: target, as: UTF8.self)
                try checkLinkStaysInside(f.path, target: links[f.path]!)
                digests[f.path] = SHA256.hash(target)
            } else {
                digests[f.path] = try source.contentDigest(f, plan: plan)
            }
        }
        let mtime = try exportTime(s, source: source)
        let manifest = try source.manifestJSON(s, digests: digests)
        let staged = try StagedOutput(target: output, force: force, directory: false)
        var report = baseReport(s, source: source, output: staged.target, format: "tar")
        do {
            let fd = try Sys.open(staged.temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o644)
            defer { Sys.close(fd) }
            var tar = TarWriter(fd: fd, path: staged.temp)
            let manifestBytes = Array((manifest.canonical + "\n").utf8)
            try tar.addFile(tarManifestName, mode: 0o644, size: Int64(manifestBytes.count), mtime: mtime) { emit in
                try manifestBytes.withUnsafeBytes { try emit($0) }
            }
            progress?.begin("export", totalBytes: s.totalSize)
            defer { progress?.end() }
            for f in s.files {
                let sha = digests[f.path]!
                if let target = links[f.path] {
                    try tar.addSymlink(f.path, target: target, mtime: mtime)
                    report.files.append(.init(path: f.path, size: f.entry.size, sha256: Hex.encode(sha), mode: "symlink"))
                    continue
                }
                var got: [UInt8] = []
                try tar.addFile(f.path, mode: f.entry.mode, size: f.entry.size, mtime: mtime) { emit in
                    got = try source.streamContent(f, plan: plan, progress: progress, emit: emit)
                }
                guard got == sha else {
                    throw MLStoreError.corruptObject(f.entry.id.hex, "the content of '\(f.treePath)' does not match its recorded SHA-256")
                }
                report.files.append(.init(path: f.path, size: f.entry.size, sha256: Hex.encode(sha), mode: String(f.entry.mode, radix: 8)))
                report.bytes += f.entry.size
            }
            try tar.finish()
            try Sys.fsync(fd, path: staged.temp)
            report.manifest = manifest
            try staged.publish()
        } catch {
            staged.discard()
            throw error
        }
        return report
    }
}

/// Writes a POSIX (ustar) tar archive, with pax extended headers for long names and large sizes.
struct TarWriter {
    let fd: Int32
    let path: String

    static let maxUstarSize: Int64 = 0o77777777777

    mutating func addFile(_ name: String, mode: UInt32, size: Int64, mtime: Int64,
                          body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        var pax: [(String, String)] = []
        if name.utf8.count > 100 { pax.append(("path", name)) }
        if size > Self.maxUstarSize { pax.append(("size", String(size))) }
        if !pax.isEmpty { try writePax(pax, for: name, mtime: mtime) }
        try write(Self.header(name: name, mode: mode, size: size > Self.maxUstarSize ? 0 : size, mtime: mtime, type: UInt8(ascii: "0"), link: ""))
        var count: Int64 = 0
        try body { buf in
            count += Int64(buf.count)
            guard count <= size else { throw MLStoreError(.corrupt, "'\(name)' is longer than its recorded size \(size)") }
            try Sys.write(fd, buf, path: path)
        }
        guard count == size else { throw MLStoreError(.corrupt, "'\(name)' has \(count) bytes, not its recorded size \(size)") }
        try pad(size)
    }

    mutating func addSymlink(_ name: String, target: String, mtime: Int64) throws {
        var pax: [(String, String)] = []
        if name.utf8.count > 100 { pax.append(("path", name)) }
        if target.utf8.count > 100 { pax.append(("linkpath", target)) }
        if !pax.isEmpty { try writePax(pax, for: name, mtime: mtime) }
        try write(Self.header(name: name, mode: 0o777, size: 0, mtime: mtime, type: UInt8(ascii: "2"), link: target))
    }

    func finish() throws { try write([UInt8](repeating: 0, count: 1024)) }

    private func write(_ bytes: [UInt8]) throws { try Sys.write(fd, bytes, path: path) }

    private func pad(_ size: Int64) throws {
        let r = Int(size % 512)
        if r != 0 { try write([UInt8](repeating: 0, count: 512 - r)) }
    }

    /// A pax extended header (`x`): records `"<len> <key>=<value>\n"`, where len counts the whole record.
    private func writePax(_ records: [(String, String)], for name: String, mtime: Int64) throws {
        var data: [UInt8] = []
        for (k, v) in records {
            let body = " \(k)=\(v)\n"
            var len = body.utf8.count + 1
            while String(len).count + body.utf8.count != len { len = String(len).count + body.utf8.count }
            data += Array((String(len) + body).utf8)
        }
        let paxName = "PaxHeaders/" + String(decoding: Array(Path.basename(name).utf8.prefix(80)), as: UTF8.self)
        try write(Self.header(name: paxName, mode: 0o644, size: Int64(data.count), mtime: mtime, type: UInt8(ascii: "x"), link: ""))
        try write(data)
        try pad(Int64(data.count))
    }

    static func header(name: String, mode: UInt32, size: Int64, mtime: Int64, type: UInt8, link: String) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: some Sequence<UInt8>, at offset: Int, max: Int) {
            for (i, b) in bytes.prefix(max).enumerated() { h[offset + i] = b }
        }
        func octal(_ v: Int64, at offset: Int, width: Int) {
            let digits = String(v, radix: 8)
            put((String(repeating: "0", count: Swift.max(0, width - 1 - digits.count)) + digits).utf8, at: offset, max: width - 1)
        }
        put(name.utf8, at: 0, max: 100)
        octal(Int64(mode), at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(mtime, at: 136, width: 12)
        for i in 148..<156 { h[i] = UInt8(ascii: " ") }
        h[156] = type
        put(link.utf8, at: 157, max: 100)
        put("ustar".utf8, at: 257, max: 6)
        put("00".utf8, at: 263, max: 2)
        let sum = h.reduce(0) { $0 + Int($1) }
        octal(Int64(sum), at: 148, width: 7)
        h[155] = UInt8(ascii: " ")
        return h
    }
}

/// Reads an OCI image layout and verifies it: `oci-layout`, `index.json`, the image manifest, its config
/// and every layer — each blob's size and SHA-256 must match its descriptor and its name, and the media
/// types must be the ones the layout declares. Used to check exports and to unpack them again.
public enum OCILayout {
    public struct Descriptor: Sendable, Equatable {
        public var mediaType: String
        public var digest: String
        public var size: Int64
        public var annotations: [String: String]
        public var path: String
    }

    public struct Image: Sendable {
        public var refName: String?
        public var manifestDescriptor: Descriptor
        public var manifest: JSONValue
        public var artifactType: String?
        public var config: Descriptor
        public var configJSON: JSONValue
        public var layers: [Descriptor]
    }

    static func bad(_ dir: String, _ what: String) -> MLStoreError {
        MLStoreError(.corrupt, "the OCI layout at \(dir) is invalid: \(what)")
    }

    static func readJSON(_ path: String, dir: String) throws -> JSONValue {
        guard (try Sys.lstatIfExists(path))?.type == .regular else { throw bad(dir, "\(Path.basename(path)) is missing") }
        do {
            return try JSONValue.parse(json: try Sys.readFile(path, limit: 64 << 20), what: path)
        } catch let e as MLStoreError {
            throw bad(dir, e.message)
        }
    }

    /// Checks a descriptor's blob (exists, a regular file, size and SHA-256 match) and returns it.
    static func descriptor(_ v: JSONValue?, dir: String, what: String) throws -> Descriptor {
        guard let o = v?.object, let mediaType = o["mediaType"]?.string, let digest = o["digest"]?.string,
            let sizeValue = o["size"]?.number, sizeValue >= 0, sizeValue == sizeValue.rounded()
        else { throw bad(dir, "\(what) is not a descriptor with mediaType, digest and size") }
        guard digest.hasPrefix("sha256:"), let hex = Optional(String(digest.dropFirst(7))), hex.count == 64, Hex.isHex(hex), hex == hex.lowercased() else {
            throw bad(dir, "\(what) has digest '\(digest)' (expected sha256:<64 lower-case hex>)")
        }
        let size = Int64(sizeValue)
        let path = dir + "/blobs/sha256/" + hex
        guard let st = try Sys.lstatIfExists(path), st.type == .regular else { throw bad(dir, "blob \(digest) of \(what) is missing") }
        guard st.size == size else { throw bad(dir, "blob \(digest) of \(what) has \(st.size) bytes, its descriptor says \(size)") }
        let (digestBytes, total) = try SHA256.hash(file: path, noFollow: true)
        guard total == size, Hex.encode(digestBytes) == hex else { throw bad(dir, "blob \(digest) of \(what) does not match its digest") }
        var annotations: [String: String] = [:]
        for (k, v) in o["annotations"]?.object ?? [:] {
            guard let s = v.string else { throw bad(dir, "annotation \(k) of \(what) is not a string") }
            annotations[k] = s
        }
        return Descriptor(mediaType: mediaType, digest: digest, size: size, annotations: annotations, path: path)
    }

    /// Reads and verifies the layout at `dir`; with several images, `refName` picks one.
    public static func read(_ dir: String, refName: String? = nil) throws -> Image {
        guard (try Sys.lstatIfExists(dir))?.type == .directory else {
            throw MLStoreError(.notFound, "no OCI layout at \(dir)")
        }
        let layout = try readJSON(dir + "/oci-layout", dir: dir)
        guard layout["imageLayoutVersion"]?.string == OCI.layoutVersion else { throw bad(dir, "oci-layout does not declare imageLayoutVersion 1.0.0") }
        let index = try readJSON(dir + "/index.json", dir: dir)
        guard index["schemaVersion"]?.number == 2 else { throw bad(dir, "index.json: schemaVersion is not 2") }
        if let mt = index["mediaType"], mt.string != OCI.indexMediaType { throw bad(dir, "index.json: mediaType is \(mt)") }
        guard let manifests = index["manifests"]?.array, !manifests.isEmpty else { throw bad(dir, "index.json lists no manifests") }
        let chosen: JSONValue
        if let refName {
            guard let m = manifests.first(where: { $0["annotations"]?[OCI.refNameAnnotation]?.string == refName }) else {
                throw MLStoreError(.notFound, "the OCI layout at \(dir) has no image named \(refName)")
            }
            chosen = m
        } else {
            guard manifests.count == 1 else { throw MLStoreError(.usage, "the OCI layout at \(dir) holds \(manifests.count) images; name one") }
            chosen = manifests[0]
        }
        let md = try descriptor(chosen, dir: dir, what: "the index's manifest")
        guard md.mediaType == OCI.manifestMediaType else { throw bad(dir, "the index names a \(md.mediaType), not an image manifest") }
        let manifest = try readJSON(md.path, dir: dir)
        guard manifest["schemaVersion"]?.number == 2, manifest["mediaType"]?.string == OCI.manifestMediaType else {
            throw bad(dir, "the image manifest lacks schemaVersion 2 or mediaType \(OCI.manifestMediaType)")
        }
        let config = try descriptor(manifest["config"], dir: dir, what: "the config")
        let configJSON = try readJSON(config.path, dir: dir)
        guard let layerValues = manifest["layers"]?.array else { throw bad(dir, "the image manifest has no layers array") }
        var layers: [Descriptor] = []
        for (i, l) in layerValues.enumerated() { layers.append(try descriptor(l, dir: dir, what: "layer \(i)")) }
        return Image(refName: chosen["annotations"]?[OCI.refNameAnnotation]?.string, manifestDescriptor: md, manifest: manifest,
                     artifactType: manifest["artifactType"]?.string, config: config, configJSON: configJSON, layers: layers)
    }

    /// Unpacks a verified layout's layers into `output` as files named by their title annotations (with
    /// the mode annotation), staged and renamed into place like `get`. Returns the paths written.
    @discardableResult
    public static func extract(_ dir: String, to output: String, force: Bool = false, refName: String? = nil) throws -> [String] {
        let image = try read(dir, refName: refName)
        var names: [String] = []
        for l in image.layers {
            guard let title = l.annotations[OCI.titleAnnotation] else { throw bad(dir, "layer \(l.digest) has no \(OCI.titleAnnotation) annotation") }
            try Workspace.validateRelative(title)
            names.append(title)
        }
        guard Set(names).count == names.count else { throw bad(dir, "two layers have the same title") }
        let staged = try StagedOutput(target: output, force: force, directory: true)
        do {
            let writer = try SafeWriter(root: staged.temp)
            for (l, name) in zip(image.layers, names) {
                try writer.checkParents(name, allowReplacing: [])
                let mode: UInt32 = l.annotations[OCI.modeAnnotation] == "755" ? 0o755 : 0o644
                let h = SHA256()
                _ = try writer.writeFile(name, mode: mode) { emit in
                    let fd = try Sys.open(l.path, O_RDONLY | O_NOFOLLOW)
                    defer { Sys.close(fd) }
                    var buffer = [UInt8](repeating: 0, count: 1 << 20)
                    while true {
                        let n = try buffer.withUnsafeMutableBytes { try Sys.read(fd, $0.baseAddress!, $0.count, path: l.path) }
                        if n == 0 { break }
                        try buffer.withUnsafeBytes {
                            let slice = UnsafeRawBufferPointer(rebasing: $0[0..<n])
                            h.update(slice)
                            try emit(slice)
                        }
                    }
                }
                guard "sha256:" + Hex.encode(h.finalize()) == l.digest else { throw bad(dir, "blob \(l.digest) changed while it was read") }
            }
            try staged.publish()
        } catch {
            staged.discard()
            throw error
        }
        return names
    }
}
