import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

struct Herald: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract: "Herald: a configuration-driven, distributed notification service.",
        subcommands: [
            GatewayCommand.self, WorkerCommand.self, MigrateCommand.self, ConfigCommand.self, RenderCommand.self,
            RouteCommand.self, ChannelsCommand.self, SinkCommand.self, DeadLetterCommand.self, KeysCommand.self,
            AuditCommand.self, RetentionCommand.self,
        ])
}

@main
enum HeraldMain {
    /// Swift's tasks run on the event loops that do the I/O (HTTP, PostgreSQL): a task resumed by a
    /// database answer continues on the thread that read it, instead of hopping to Swift's own pool
    /// and back for every query (what a worker's profile showed most: threads switching).
    /// `HERALD_EXECUTOR=swift` keeps Swift's pool. Blocking C calls never run on either: rabbitmq-c and
    /// libcurl have threads of their own.
    static func main() async {
        if ProcessInfo.processInfo.environment["HERALD_EXECUTOR"] != "swift" {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        await Herald.main()
    }
}
