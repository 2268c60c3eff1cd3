import ArgumentParser

@main
struct Herald: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract: "Herald: a configuration-driven, distributed notification service.",
        subcommands: [
            GatewayCommand.self, WorkerCommand.self, MigrateCommand.self, ConfigCommand.self, RenderCommand.self,
            RouteCommand.self, ChannelsCommand.self, SinkCommand.self, DeadLetterCommand.self, KeysCommand.self,
            AuditCommand.self,
        ])
}
