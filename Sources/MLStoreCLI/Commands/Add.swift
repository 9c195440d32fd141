import ArgumentParser
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add",
            abstract: "Stage files and directories: hash them into the store and record them in the index.",
            discussion: """
                Large files are split into content-defined chunks, so a changed model stores only its changed \
                chunks. Unchanged files (same size, times and inode as recorded) are not read again. A directory \
                is tracked as a unit: files added to or removed from it later show up in `status`, and adding it \
                again stages them. Inside a git work tree the added paths and .mlstore/ are written to \
                .gitignore, as `dvc add` does (disable with --no-gitignore).
                """)

        @Argument(help: "Files or directories to add.")
        var paths: [String]

        @Flag(name: .shortAndLong, help: "Add paths even if .mlstoreignore ignores them.")
        var force = false

        @Flag(name: .customLong("no-gitignore"), help: "Do not write added paths to .gitignore.")
        var noGitignore = false

        @OptionGroup var options: StoreOptions

        func validate() throws {
            if paths.isEmpty { throw ValidationError("give at least one path to add, e.g. `mlstore add data/`") }
        }

        func run() throws {
            let ws = try options.workspace()
            let cwd = Sys.currentDirectory()
            let rels = try paths.map { try ws.relativePath($0, cwd: cwd) }
            let report = try ws.add(rels, options: .init(force: force, updateGitignore: !noGitignore), progress: Terminal.progressBar())
            if options.json { return try Terminal.printJSON(report) }
            for p in report.added { print("\(Terminal.paint("added", .green))    \(p)") }
            for p in report.updated { print("\(Terminal.paint("updated", .yellow))  \(p)") }
            for p in report.removed { print("\(Terminal.paint("removed", .red))  \(p)") }
            var summary = "\(report.added.count) added, \(report.updated.count) updated, \(report.removed.count) removed, \(report.unchanged) unchanged"
            summary += "; \(Terminal.bytes(report.hashedBytes)) hashed, \(Terminal.bytes(report.storedBytes)) new in the store (\(report.objectsWritten) objects)"
            print(Terminal.paint(summary, .dim))
            if !report.gitignoreUpdated.isEmpty {
                print(Terminal.paint("added to .gitignore: " + report.gitignoreUpdated.joined(separator: " "), .dim))
            }
        }
    }
}
