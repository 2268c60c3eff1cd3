import HeraldStore
import PostgresNIO
import Testing

/// How every Herald process configures its PostgreSQL pool (`PostgresClient.Configuration.herald`).
@Suite struct PoolConfigurationTests {
    static func setting(_ name: String, _ configuration: PostgresClient.Configuration) -> String? {
        configuration.options.additionalStartupParameters.first { $0.0 == name }?.1
    }

    /// Every park of a connection used to schedule a keep-alive (30 s) and an idle timeout (60 s):
    /// a task and a sleep each, holding ~600 bytes until they would have fired even once cancelled.
    /// A worker's memory grew by 40 MB over 60,000 deliveries (bench/results/pool-timers-memory-{before,after}.md).
    @Test func parkingAConnectionSchedulesNoLongTimers() throws {
        let configuration = try PostgresClient.Configuration.herald(url: "postgres://u@db:5432/herald", connections: 8)
        #expect(configuration.options.keepAliveBehavior == nil)
        #expect(configuration.options.connectionIdleTimeout <= .seconds(10))
        #expect(configuration.options.minimumConnections == 1)
        #expect(configuration.options.maximumConnections == 8)
        let single = try PostgresClient.Configuration.herald(url: "postgres://u@db:5432/herald", connections: 1)
        #expect(single.options.minimumConnections == 0)
    }

    @Test func statementsAreBoundedByTheServer() throws {
        let configuration = try PostgresClient.Configuration.herald(
            url: "postgres://u@db:5432/herald", connections: 4, statementTimeout: .seconds(3))
        #expect(Self.setting("statement_timeout", configuration) == "3000")
        #expect(Self.setting("idle_in_transaction_session_timeout", configuration) == "6000")
    }

    @Test func onlyAGenericPoolForcesGenericPlans() throws {
        let perExecution = try PostgresClient.Configuration.herald(url: "postgres://u@db:5432/herald", connections: 4)
        #expect(Self.setting("plan_cache_mode", perExecution) == nil)
        let generic = try PostgresClient.Configuration.herald(url: "postgres://u@db:5432/herald", connections: 4, plans: .generic)
        #expect(Self.setting("plan_cache_mode", generic) == "force_generic_plan")
    }
}
