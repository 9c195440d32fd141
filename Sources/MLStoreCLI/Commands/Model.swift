import ArgumentParser
import Foundation
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct ModelCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "model",
            abstract: "Model versions: what files of which commit make up a model, how to load it, and its signature.",
            discussion: """
                A model version (v1, v2, … per name) records the lineage commit, the model's files in it, the \
                flavor, framework, input/output signature and free metadata (spec/models.md). `<name>@v<N>` is \
                a revision everywhere; stages (`mlstore promote <name> <name>@v<N> --stage production`) and \
                `<name>@<stage>` work as before. `mlstore get` and `mlstore export` deliver a model's files.
                """,
            subcommands: [Register.self, List.self, Show.self], defaultSubcommand: List.self)

        struct Register: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "register",
                abstract: "Record a new version of a model: mlstore model register <name> <rev>[:<path>].",
                discussion: """
                    Without a path the model is the stage's path (for <model>@<stage>), the version's files (for \
                    <model>@v<N>), else the outputs the commit recorded, else the whole commit. Paths are paths in \
                    the commit's tree (as `ls-tree` shows them). The flavor defaults to what the file names say \
                    (.onnx → onnx, .safetensors → safetensors, .pt → pytorch, …), else custom; the framework version \
                    defaults to the one in the commit's recorded `pip freeze`.
                    """)

            @Argument(help: "Model name.") var name: String
            @Argument(help: "The commit (any revision), optionally with :<path> for the model's file or directory.") var revision: String
            @Option(name: .customLong("path"), help: "Another file or directory of the model (repeatable).") var paths: [String] = []
            @Option(help: "How to load it: onnx, safetensors, pytorch, sklearn-pickle, keras, gguf, custom, …") var flavor: String?
            @Option(help: "Framework, e.g. torch, onnxruntime, scikit-learn.") var framework: String?
            @Option(name: .customLong("framework-version"), help: "Framework version (default: from the commit's environment record).")
            var frameworkVersion: String?
            @Option(help: "A JSON (or YAML) file with the input/output signature, e.g. {\"inputs\": […], \"outputs\": […]}.")
            var signature: String?
            @Option(name: [.customShort("m"), .long], help: "Description.") var description: String = ""
            @Option(name: .customLong("meta"), help: "Metadata key=value (repeatable).") var meta: [String] = []
            @OptionGroup var options: StoreOptions

            func run() throws {
                let repo = try options.repository()
                var request = ModelRegistration(name: name, revision: revision)
                request.paths = paths
                request.flavor = flavor
                request.framework = framework
                request.frameworkVersion = frameworkVersion
                request.description = description
                if let signature {
                    request.signature = try JSONValue.load(file: Path.absolute(signature, base: Sys.currentDirectory()), what: "signature")
                }
                for m in meta {
                    guard let eq = m.firstIndex(of: "=") else { throw MLStoreError(.usage, "--meta '\(m)' is not key=value") }
                    request.metadata[String(m[..<eq])] = String(m[m.index(after: eq)...])
                }
                let (id, v) = try repo.registerModel(request)
                let files = try repo.resolveModel(v.label).files
                if options.json {
                    return try Terminal.printJSON(["id": id.hex, "model": v.name, "version": "\(v.version)", "commit": v.commit.hex, "flavor": v.flavor ?? ""])
                }
                let size = files.reduce(Int64(0)) { $0 + $1.entry.size }
                print("\(Terminal.paint(v.label, .bold)) → commit \(Terminal.paint(v.commit.short, .yellow)): \(files.count) file(s), \(Terminal.bytes(size)) from \(v.artifacts.map(\.path).joined(separator: ", ")), flavor \(v.flavor ?? "-") (model \(id.short))")
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "Registered models (newest version, stages), or the versions of one model.")

            @Argument(help: "A model name: list its versions.") var name: String?
            @OptionGroup var options: StoreOptions

            struct ModelRow: Encodable {
                var name: String, latest: Int, id: String, commit: String, flavor: String?, stages: [String: String], registered: String, by: String, description: String
            }
            struct VersionRow: Encodable {
                var version: Int, id: String, commit: String, flavor: String?, framework: String?, files: Int, size: Int64, stages: [String], registered: String, by: String, description: String
            }

            func run() throws {
                let repo = try options.repository()
                if let name {
                    let chain = try repo.modelVersions(name)
                    if chain.isEmpty {
                        throw MLStoreError(.notFound, "no model named \(name) is registered", hint: "register one with `mlstore model register \(name) <rev>[:<path>]`")
                    }
                    let stages = try repo.modelStages(name, versions: chain)
                    let rows = try chain.map { id, v in
                        let files = try repo.resolveModel(v.label).files
                        return VersionRow(version: v.version, id: id.hex, commit: v.commit.hex, flavor: v.flavor,
                                          framework: v.framework.map { $0 + (v.frameworkVersion.map { " " + $0 } ?? "") },
                                          files: files.count, size: files.reduce(0) { $0 + $1.entry.size },
                                          stages: stages.filter { $0.version == v.version }.map(\.stage).sorted(),
                                          registered: v.author.isoDate, by: v.author.name, description: v.subject)
                    }
                    if options.json { return try Terminal.printJSON(rows) }
                    var t = Table(["VERSION", "COMMIT", "FLAVOR", "FILES", "SIZE", "STAGES", "REGISTERED", "BY", "DESCRIPTION"])
                    t.colors[1] = .yellow
                    for r in rows {
                        t.add(["v\(r.version)", String(r.commit.prefix(12)), r.flavor ?? "-", "\(r.files)", Terminal.bytes(r.size),
                               r.stages.joined(separator: ","), r.registered, r.by, r.description])
                    }
                    print(t.render(), terminator: "")
                    return
                }
                let rows = try repo.models().map { name, id, v in
                    let stages = try repo.modelStages(name)
                    var map: [String: String] = [:]
                    for s in stages { map[s.stage] = s.version.map { "v\($0)" } ?? s.record.target.map { String($0.hex.prefix(12)) } ?? "(cleared)" }
                    return ModelRow(name: name, latest: v.version, id: id.hex, commit: v.commit.hex, flavor: v.flavor, stages: map,
                                    registered: v.author.isoDate, by: v.author.name, description: v.subject)
                }
                if options.json { return try Terminal.printJSON(rows) }
                if rows.isEmpty {
                    print("no models registered yet (register one with `mlstore model register <name> <rev>[:<path>]`)")
                    return
                }
                var t = Table(["MODEL", "LATEST", "FLAVOR", "STAGES", "REGISTERED", "BY", "DESCRIPTION"])
                t.colors[1] = .yellow
                for r in rows {
                    t.add([r.name, "v\(r.latest)", r.flavor ?? "-", r.stages.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
                           r.registered, r.by, r.description])
                }
                print(t.render(), terminator: "")
            }
        }

        struct Show: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "show",
                abstract: "A model version: files, flavor, framework, signature, metadata, lineage summary, metrics and stage history.")

            @Argument(help: "<name>, <name>@v<N> or <name>@<stage>.") var model: String
            @OptionGroup var options: StoreOptions

            struct FileRow: Encodable { var path: String, treePath: String, size: Int64, mode: String, id: String }
            struct StageRow: Encodable { var stage: String, record: String, commit: String?, version: Int?, since: String, by: String }
            struct Lineage: Encodable {
                var subject: String, author: Signature, parents: [String], inputs: [Artifact], outputs: [Artifact]
                var params: JSONValue?, metrics: JSONValue?, command: [String]?, code: String?
            }
            struct Out: Encodable {
                var name: String, version: Int?, id: String?, commit: String, stage: String?, flavor: String?, framework: String?, frameworkVersion: String?
                var signature: JSONValue?, metadata: [String: String], description: String?, author: Signature?, previous: String?
                var artifacts: [Artifact], files: [FileRow], stages: [StageRow], lineage: Lineage, history: [StageEvent]
            }

            func run() throws {
                let repo = try options.repository()
                let s = try repo.resolveModel(model)
                let c = try repo.commit(s.commit)
                let v = s.version
                let stages = try repo.modelStages(s.name).map {
                    StageRow(stage: $0.stage, record: $0.recordID.hex, commit: $0.record.target?.hex, version: $0.version,
                             since: $0.record.actor.isoDate, by: $0.record.actor.name)
                }
                let history = (try? repo.stageLog(model: s.name)) ?? []
                let out = Out(
                    name: s.name, version: v?.version, id: s.versionID?.hex, commit: s.commit.hex, stage: s.stage, flavor: v?.flavor,
                    framework: v?.framework, frameworkVersion: v?.frameworkVersion,
                    signature: try v?.signature.map { try repo.json($0) },
                    metadata: Dictionary((v?.metadata ?? []).map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }),
                    description: v?.description, author: v?.author, previous: v?.previous?.hex, artifacts: s.artifacts,
                    files: s.files.map { FileRow(path: $0.path, treePath: $0.treePath, size: $0.entry.size,
                                                 mode: $0.entry.kind == .symlink ? "symlink" : String($0.entry.mode, radix: 8), id: $0.entry.id.hex) },
                    stages: stages,
                    lineage: Lineage(subject: c.subject, author: c.author, parents: c.parents.map(\.hex), inputs: c.inputs, outputs: c.outputs,
                                     params: try c.params.map { try repo.json($0) }, metrics: try c.metrics.map { try repo.json($0) },
                                     command: c.command, code: c.code.map { $0.gitCommit ?? $0.tree.hex }),
                    history: history)
                if options.json { return try Terminal.printJSON(out) }
                func line(_ k: String, _ v: String) { print(Terminal.paint(k.padding(toLength: 12, withPad: " ", startingAt: 0), .dim) + v) }
                if let v, let id = s.versionID {
                    print(Terminal.paint("model \(v.label)", .bold) + "  (\(id.hex))")
                } else {
                    print(Terminal.paint("model \(s.label)", .bold) + "  (commit \(s.commit.short) is not a registered version of \(s.name))")
                }
                line("commit", "\(Terminal.paint(s.commit.short, .yellow)) \(c.subject)")
                if let v {
                    line("registered", "\(v.author.isoDate) by \(v.author.name) <\(v.author.email)>")
                    line("flavor", v.flavor ?? "-")
                    if let fw = v.framework { line("framework", fw + (v.frameworkVersion.map { " " + $0 } ?? "")) }
                    for m in v.metadata { line("meta", "\(m.key)=\(m.value)") }
                }
                line("artifacts", s.artifacts.map(\.path).joined(separator: ", "))
                line("files", "\(s.files.count), \(Terminal.bytes(s.totalSize))")
                for f in s.files { print("              \(Terminal.bytes(f.entry.size).padding(toLength: 10, withPad: " ", startingAt: 0)) \(f.path)") }
                if let sig = out.signature { line("signature", sig.canonical) }
                let held = stages.filter { $0.version != nil && $0.version == v?.version || (v == nil && $0.commit == s.commit.hex) }
                if !held.isEmpty { line("stages", held.map { "\($0.stage) (since \($0.since), by \($0.by))" }.joined(separator: ", ")) }
                if let d = v?.description, !d.isEmpty {
                    print("")
                    for l in d.split(separator: "\n", omittingEmptySubsequences: false).dropLast(d.hasSuffix("\n") ? 1 : 0) { print("    \(l)") }
                }
                print("\n" + Terminal.paint("lineage", .bold) + " (mlstore show \(s.commit.short); mlstore lineage \(s.label) --up)")
                for i in c.inputs { line("  input", "\(i.path) \(Terminal.paint(i.id.short, .dim))") }
                for o in c.outputs { line("  output", "\(o.path) \(Terminal.paint(o.id.short, .dim))") }
                if let p = out.lineage.params?.flattened(), !p.isEmpty {
                    line("  params", p.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.display)" }.joined(separator: " "))
                }
                if let m = out.lineage.metrics?.flattened(), !m.isEmpty {
                    let shown = m.sorted { $0.key < $1.key }.map { k, v in
                        "\(k)=\(v.array?.last?["value"]?.display ?? v.display)"
                    }
                    line("  metrics", shown.joined(separator: " "))
                }
                if let cmd = c.command { line("  command", cmd.joined(separator: " ")) }
                if !history.isEmpty {
                    print("\n" + Terminal.paint("stage history", .bold))
                    print(Table.stageHistory(history).render(), terminator: "")
                }
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get",
            abstract: "Download a model's files from a remote, verified, with no local store: mlstore get <remote> <model>@<stage|vN>.",
            discussion: """
                The deployment primitive: reads the remote's refs, resolves the stage or version, and writes exactly \
                the model's files into -o (default ./<model>), every object verified against its id. Files go to a \
                temporary directory next to the output that is renamed into place at the end, so a failure leaves \
                nothing behind; an existing non-empty output is replaced only with --force. Exit status: 3 no such \
                model, version or stage; 4 the remote's data is corrupt or incomplete; 5 the output exists; \
                7 the remote cannot be reached (or another I/O error).
                """)

        @Argument(help: "The remote: a directory path, file:// URL or s3://bucket/prefix (or a remote name of the current store).") var remote: String
        @Argument(help: "<model>@<stage>, <model>@v<N>, or <model> for the newest version.") var model: String
        @Option(name: [.customShort("o"), .long], help: "Output directory (default: ./<model>).") var output: String?
        @Flag(help: "Replace an existing output directory.") var force = false
        @Flag(help: "Print machine-readable JSON.") var json = false

        func run() throws {
            let spec = try ModelSpec(parsing: model)
            let transport: RemoteTransport
            if !remote.contains("/") && !remote.contains("://") && !remote.hasPrefix("."),
                let repo = try? Repository.discover(from: Sys.currentDirectory()), (try? repo.remotes())?.contains(where: { $0.name == remote }) == true
            {
                transport = try repo.transport(named: remote).transport
            } else {
                transport = try Repository.transport(for: remote)
            }
            let report = try Repository.getModel(from: transport, spec: model, output: output ?? spec.name, force: force, progress: Terminal.progressBar())
            if json { return try Terminal.printJSON(report) }
            printSummary(report)
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "export",
            abstract: "Write a model as an OCI image layout (--format oci, a directory) or a tar archive (--format tar).",
            discussion: """
                OCI: oci-layout, index.json and blobs/sha256/: an image manifest (artifactType \(OCI.artifactType)) whose \
                config is the model manifest JSON (\(OCI.configMediaType)) and whose layers are the model's files \
                (\(OCI.layerMediaType), titled with their paths): `oras`, `skopeo` and registries accept it \
                (e.g. `skopeo copy oci:DIR:v2 docker://registry/fraud:v2`). tar: mlstore-model.json, then the files. \
                Output is staged and renamed into place; an existing output is replaced only with --force. The same \
                version always exports to the same bytes.
                """)

        @Argument(help: "<model>@<stage>, <model>@v<N>, or <model> for the newest version.") var model: String
        @Option(help: "oci or tar.") var format: String = "oci"
        @Option(name: [.customShort("o"), .long], help: "Output: a directory (oci) or a file (tar).") var output: String
        @Option(help: "OCI reference name in index.json (default: v<N>, or the stage).") var tag: String?
        @Flag(help: "Replace an existing output.") var force = false
        @OptionGroup var options: StoreOptions

        func validate() throws {
            guard ModelExportFormat(rawValue: format) != nil else { throw ValidationError("--format must be oci or tar") }
            if tag != nil && format != "oci" { throw ValidationError("--tag applies to --format oci only") }
        }

        func run() throws {
            let repo = try options.repository()
            let report = try repo.exportModel(model, format: ModelExportFormat(rawValue: format)!, output: output, force: force, refName: tag,
                                              progress: Terminal.progressBar())
            if options.json { return try Terminal.printJSON(report) }
            printSummary(report)
        }
    }
}

/// The text summary of `get` and `export`: what was resolved, then every file written.
private func printSummary(_ r: ModelOutputReport) {
    let what = r.version.map { "v\($0)" } ?? "commit \(r.commit.prefix(12)) (not a registered version)"
    print("\(Terminal.paint(r.request, .bold)) → \(what), commit \(Terminal.paint(String(r.commit.prefix(12)), .yellow)) from \(r.source)")
    for f in r.files {
        print("  sha256:\(f.sha256)  \(Terminal.bytes(f.size).padding(toLength: 10, withPad: " ", startingAt: 0))  \(f.path)")
    }
    var tail = "wrote \(r.files.count) file(s), \(Terminal.bytes(r.bytes)) to \(r.output)"
    if r.format == "oci", let d = r.manifestDigest, let ref = r.refName { tail += " (OCI image layout, \(ref) = \(d))" }
    if r.format == "tar" { tail += " (tar with \(Repository.tarManifestName))" }
    print(tail)
}
