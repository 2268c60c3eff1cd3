import Foundation
public import HeraldCore
import HeraldFilter
public import Logging

/// One JSON object per line on standard error, in Elastic Common Schema names, ready for
/// Filebeat/Logstash (deploy/elk/): `@timestamp`, `log.level`, `log.logger`, `message`,
/// `service.name`, `log.origin.*`, then the metadata. Values keep their JSON types: a number logged as
/// a number (`.stringConvertible(42)`) is a JSON number, a list an array, a dictionary an object.
public struct JSONLogHandler: LogHandler {
    public let label: String
    /// `herald-gateway`, `herald-worker`, …
    public let service: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]

    public init(label: String, service: String) {
        self.label = label
        self.service = service
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let line = Self.line(
            event: event, handlerMetadata: metadata, label: label, service: service, now: Date())
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// The line for `event`, without its newline (pure: the tests read it).
    public static func line(event: LogEvent, handlerMetadata: Logger.Metadata, label: String, service: String, now: Date) -> String {
        var fields: [String: JSONValue] = [:]
        for (key, value) in handlerMetadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) {
            // ECS has `error` as an object (`error.message`, …): a plain "error" string would clash in the index.
            fields[key == "error" ? "error.message" : key] = json(value)
        }
        if let error = event.error, fields["error.message"] == nil { fields["error.message"] = .string("\(error)") }
        fields["@timestamp"] = .string(Timestamp.string(now))
        fields["log.level"] = .string(event.level.rawValue)
        fields["log.logger"] = .string(label)
        fields["message"] = .string(event.message.description)
        fields["service.name"] = .string(service)
        fields["log.origin.file.name"] = .string(event.file.split(separator: "/").last.map(String.init) ?? event.file)
        fields["log.origin.file.line"] = .integer(Int64(event.line))
        fields["log.origin.function"] = .string(event.function)
        return JSONWriter.string(.object(fields))
    }

    public static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let string): return .string(string)
        case .stringConvertible(let convertible):
            switch convertible {
            case let value as Bool: return .bool(value)
            case let value as Int: return .integer(Int64(value))
            case let value as Int64: return .integer(value)
            case let value as Int32: return .integer(Int64(value))
            case let value as UInt16: return .integer(Int64(value))
            case let value as Double where value.isFinite: return .double(value)
            default: return .string(convertible.description)
            }
        case .array(let values): return .array(values.map(json))
        case .dictionary(let members): return .object(members.mapValues(json))
        }
    }
}
