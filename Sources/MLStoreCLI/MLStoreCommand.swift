import ArgumentParser
import Foundation
import MLStoreBasics
import MLStoreCore

/// The root command: `mlstore <subcommand>`.
public struct MLStoreCommand: ParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "mlstore",
        abstract: "A content-addressed store for ML models, datasets and their lineage.",
        discussion: """
            Run `mlstore <command> --help` for a command's options. `-C <dir>` before the command runs it \
            as if started in <dir>. Exit status: 0 success, 1 failure, 2 bad usage, 3 not found, \
            4 corrupt data, 5 conflict, 6 unsafe path, 7 I/O error, 8 locked, 9 denied (spec/cli.md).
            """,
        version: version,
        groupedSubcommands: [
            CommandGroup(name: "Workspace", subcommands: [Init.self, Add.self, Status.self, Checkout.self]),
            CommandGroup(name: "History", subcommands: [Commit.self, Log.self, Show.self, Diff.self, Branch.self, Switch.self, Tag.self, Reflog.self]),
            CommandGroup(name: "Runs and pipelines", subcommands: [Run.self, Reproduce.self, Repro.self, Dag.self]),
            CommandGroup(name: "Tracking", subcommands: [Runs.self, Compare.self, Metrics.self, Reindex.self]),
            CommandGroup(name: "Registry and lineage", subcommands: [Promote.self, Rollback.self, Stage.self, ModelCommand.self, Get.self, Export.self, Lineage.self]),
            CommandGroup(name: "Remotes", subcommands: [Clone.self, RemoteCommand.self, Push.self, Fetch.self, Pull.self, Serve.self]),
            CommandGroup(name: "Storage", subcommands: [GC.self, Cache.self, Du.self]),
            CommandGroup(name: "Plumbing", subcommands: [WriteTree.self, LsTree.self, CatObject.self, HashObject.self, Fsck.self, ConfigCommand.self]),
        ]
    )

    public init() {}
}

/// Entry point used by the `mlstore` executable.
public enum MLStoreMain {
    public static func main(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        var args = arguments
        // git-style `-C <dir>` before the subcommand (repeatable).
        while args.count >= 2 && args[0] == "-C" {
            do {
                try Sys.changeDirectory(args[1])
            } catch {
                Terminal.printError(MLStoreError(.notFound, "cannot use -C \(args[1]): \(error)"))
                exit(MLStoreError.Code.notFound.exitStatus)
            }
            args.removeFirst(2)
        }
        do {
            var command = try MLStoreCommand.parseAsRoot(args)
            try command.run()
            exit(0)
        } catch let e as MLStoreError {
            Terminal.printError(e)
            exit(e.code.exitStatus)
        } catch let e as SystemError {
            Terminal.printError(MLStoreError(.io, e.description))
            exit(MLStoreError.Code.io.exitStatus)
        } catch let e as CommandFailure {
            exit(e.status)
        } catch {
            let code = MLStoreCommand.exitCode(for: error)
            if code == .validationFailure || code.rawValue == 64 {
                FileHandle.standardError.write(Data((MLStoreCommand.fullMessage(for: error) + "\n").utf8))
                exit(MLStoreError.Code.usage.exitStatus)
            }
            MLStoreCommand.exit(withError: error)
        }
    }
}

/// Thrown by a command that already printed its outcome and only needs a non-zero exit status.
struct CommandFailure: Error {
    let status: Int32
}

/// Options every command that touches a store accepts.
struct StoreOptions: ParsableArguments {
    @Flag(name: .long, help: "Print machine-readable JSON instead of text.")
    var json = false

    func repository() throws -> Repository {
        try Repository.discover(from: Sys.currentDirectory())
    }

    func workspace() throws -> Workspace {
        try Workspace(try repository())
    }
}
