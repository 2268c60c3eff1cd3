import HeraldCore
import Testing

@Suite struct RequestValidatorTests {
    let validator = RequestValidator(registry: ChannelRegistry([.webhook()]))

    private func errors(_ body: JSONValue) -> [FieldError] {
        guard case .failure(let failure) = validator.validate(body) else { return [] }
        return failure.errors
    }

    @Test func acceptsTheDocumentedWebhookRequest() throws {
        let body: JSONValue = [
            "channel": "webhook", "to": ["webhook_url": "https://example.com/hook"],
            "message": ["text": "hi", "subject": "Hello"], "metadata": ["order": 42],
        ]
        let request = try validator.validate(body).get()
        #expect(request.channels == ["webhook"])
        #expect(request.message == MessageContent(subject: "Hello", text: "hi"))
        #expect(request.metadata == ["order": 42])
        #expect(request.document == body)
    }

    @Test func namesAnUnknownChannel() {
        let found = errors(["channel": "pigeon", "to": ["webhook_url": "https://x.test/"], "message": ["text": "t"]])
        #expect(found == [FieldError(field: "channel", message: "unknown channel 'pigeon'; known channels: webhook")])
    }

    @Test func namesTheMissingRecipientField() {
        let found = errors(["channel": "webhook", "to": ["email": "a@b.test"], "message": ["text": "t"]])
        #expect(found == [FieldError(field: "to.webhook_url", message: "is required by channel 'webhook'")])
    }

    @Test func rejectsARecipientOfTheWrongShape() {
        #expect(errors(["channel": "webhook", "to": ["webhook_url": "ftp://x"], "message": ["text": "t"]]).map(\.field)
            == ["to.webhook_url"])
        #expect(errors(["channel": "webhook", "to": ["webhook_url": 7], "message": ["text": "t"]])
            == [FieldError(field: "to.webhook_url", message: "must be a string, not number")])
    }

    @Test func collectsEveryProblemAtOnce() {
        let found = errors(["channels": ["webhook", "webhook", 3], "to": "nobody", "message": ["text": 1, "color": "red"], "extra": true])
        #expect(found.map(\.field) == ["extra", "channels.2", "channels.1", "to", "message.color", "message.text"])
    }

    @Test func requiresSomeContent() {
        #expect(errors(["channel": "webhook", "to": ["webhook_url": "https://x.test/"], "message": [:]])
            == [FieldError(field: "message.text", message: "is required when neither subject nor html is given (or name a 'template')")])
    }

    @Test func attachmentsNeedAChannelThatSendsThem() throws {
        func channel(_ name: String, carries: Bool? = nil) -> ChannelDefinition {
            ChannelDefinition(
                name: name, category: .email, recipient: RecipientField(name: "email", format: .email), concurrency: 1,
                timeout: .seconds(5), retry: .standard, carriesAttachments: carries)
        }
        let validator = RequestValidator(registry: ChannelRegistry([channel("smtp"), channel("api", carries: false)]))
        let attachment: JSONValue = ["filename": "a.txt", "content_type": "text/plain", "content": "aGk="]
        func body(_ channels: [JSONValue]) -> JSONValue {
            ["channels": .array(channels), "to": ["email": "a@example.com"], "message": ["text": "t", "attachments": [attachment]]]
        }
        guard case .failure(let refused) = validator.validate(body(["api"])) else {
            Issue.record("an e-mail channel through an HTTP API would drop the attachments")
            return
        }
        #expect(refused.errors == [FieldError(
            field: "message.attachments", message: "only e-mail channels sending through SMTP carry attachments; none of api does")])
        let accepted = try validator.validate(body(["api", "smtp"])).get()
        #expect(accepted.message.attachments?.map(\.filename) == ["a.txt"])
    }

    @Test func rejectsANonObjectBody() {
        #expect(errors([1, 2]) == [FieldError(field: "", message: "the body must be a JSON object, not array")])
    }

    @Test(arguments: [
        ("user@example.com", RecipientField.Format.email, true), ("user@", .email, false), ("a b@c.d", .email, false),
        ("+15551234567", .phone, true), ("5551234567", .phone, false), ("+0123456789", .phone, false),
        ("https://hooks.example.com/x", .url, true), ("http://", .url, false), ("javascript:alert(1)", .url, false),
    ])
    func recipientFormats(value: String, format: RecipientField.Format, valid: Bool) {
        #expect((RecipientField(name: "x", format: format).problem(with: value) == nil) == valid)
    }
}
