import HeraldCore
import PostgresNIO

/// How Herald talks about database failures: in words an operator can act on, without the
/// statement's bound values (they hold recipients and message text).
public enum StoreFailure {
    /// What failed, e.g. `PostgreSQL refused the statement: 22P05 unsupported Unicode escape sequence
    /// (table deliveries)`, or `PostgreSQL connection: serverClosedConnection`.
    /// The error that decided a failed transaction (postgres-nio wraps it).
    public static func cause(_ error: any Error) -> any Error {
        guard let transaction = error as? PostgresTransactionError else { return error }
        return transaction.closureError ?? transaction.commitError ?? transaction.beginError ?? transaction.rollbackError ?? error
    }

    public static func describe(_ error: any Error) -> String {
        let error = cause(error)
        if let error = error as? PSQLError {
            guard let info = error.serverInfo else {
                let underlying = error.underlying.map { ": \($0)" } ?? ""
                return "PostgreSQL connection: \(error.code)\(underlying)"
            }
            var text = "PostgreSQL refused the statement: \(info[.sqlState] ?? "?") \(info[.message] ?? "")"
            let names = [("table", info[.tableName]), ("column", info[.columnName]), ("constraint", info[.constraintName])]
                .compactMap { label, value in value.map { "\(label) \($0)" } }
            if !names.isEmpty { text += " (\(names.joined(separator: ", ")))" }
            return text
        }
        return String(describing: error)
    }

    /// Whether the server rejected the statement because of what it was given (a data error, a
    /// constraint), as opposed to the connection, the server's state or a deadline: only then can
    /// splitting a batch isolate the culprit.
    public static func isCausedByData(_ error: any Error) -> Bool {
        guard let error = cause(error) as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        // Class 22: data exception; 23: integrity constraint violation; 42: syntax error or access rule.
        return state.hasPrefix("22") || state.hasPrefix("23") || state.hasPrefix("42")
    }

    /// Whether the transaction lost a race (deadlock, serialization failure) and may simply be run again.
    public static func isRaceLost(_ error: any Error) -> Bool {
        guard let error = cause(error) as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001"
    }

    /// Whether the database could not be reached or answered too slowly: a client may retry later.
    public static func isUnavailable(_ error: any Error) -> Bool {
        let error = cause(error)
        if error is DeadlineExceeded { return true }
        guard let error = error as? PSQLError else { return false }
        guard let state = error.serverInfo?[.sqlState] else { return true }  // connection-level
        // 57: operator intervention (shutdown, statement timeout 57014); 08: connection; 53: resources.
        return state.hasPrefix("57") || state.hasPrefix("08") || state.hasPrefix("53")
    }
}

/// How a pool's sessions plan prepared statements.
public enum StatementPlans: Sendable {
    /// PostgreSQL's default: a plan for each execution's values until a generic plan looks no dearer.
    case perExecution
    /// Planned once per statement and connection (`plan_cache_mode = force_generic_plan`); partitions
    /// are pruned when the statement runs. For pools that only run the pipeline's fixed statements
    /// (the worker's): planning a statement on the day-partitioned tables cost more than running it.
    /// Not for pools that run the audit API's filters, whose plans depend on their values.
    case generic
}

extension PostgresClient.Configuration {
    /// A pool configured the way every Herald process uses PostgreSQL: `connections` at most,
    /// connects within 5 s, every statement bounded by the server (`statement_timeout`) and a
    /// transaction left idle by a stuck client ended (`idle_in_transaction_session_timeout`), so
    /// that no lock outlives a client that stopped answering.
    public static func herald(
        url: String, connections: Int, statementTimeout: Duration = .seconds(15), plans: StatementPlans = .perExecution
    ) throws -> Self {
        var configuration = try PostgresClient.Configuration(url: url)
        configuration.options.maximumConnections = connections
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(statementTimeout.milliseconds)"),
            ("idle_in_transaction_session_timeout", "\(2 * statementTimeout.milliseconds)"),
        ]
        // Each time the pool parks a connection it schedules timers, a keep-alive query after 30 s
        // and (above the minimum) an idle close after 60 s: each a task and a sleep which, cancelled
        // by the next lease, hold their memory (~600 bytes) until they would have fired. At a
        // busy worker's 650 statements a second that was 40 MB that never settled (heaptrack, issue
        // 11). So no keep-alive queries (a dead connection shows on its next statement, which has a
        // deadline and is retried), and a connection idle for 10 s closes; one stays open.
        configuration.options.keepAliveBehavior = nil
        configuration.options.connectionIdleTimeout = .seconds(10)
        configuration.options.minimumConnections = connections > 1 ? 1 : 0
        if plans == .generic {
            configuration.options.additionalStartupParameters.append(("plan_cache_mode", "force_generic_plan"))
        }
        return configuration
    }
}
