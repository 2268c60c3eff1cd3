import Testing

@testable import HeraldHTTPRuntime

@Suite("CurlRuntime SMTP", .timeLimit(.minutes(1)))
struct SMTPTests {
    private func withSMTPServer<T>(_ body: (TestSMTPServer) async throws -> T) async throws -> T {
        let server = try await TestSMTPServer.start()
        do {
            let result = try await body(server)
            try await server.stop()
            return result
        } catch {
            try? await server.stop()
            throw error
        }
    }

    private let message = Array(
        """
        From: Herald <alerts@example.com>\r
        To: ops@example.com\r
        Subject: disk almost full\r
        \r
        Line one.\r
        .a line starting with a dot\r
        Last line.\r

        """.utf8
    )

    private func mail(
        _ server: TestSMTPServer,
        recipients: [String] = ["ops@example.com", "oncall@example.com"],
        password: String = "secret",
        startTLS: SMTPRequest.STARTTLSPolicy = .none,
        restrict: Bool = false
    ) -> SMTPRequest {
        SMTPRequest(
            url: server.url,
            startTLS: startTLS,
            username: "user",
            password: password,
            from: "alerts@example.com",
            recipients: recipients,
            message: self.message,
            timeout: .seconds(10),
            restrictToPublicAddresses: restrict
        )
    }

    @Test func deliversTheMessageWithEnvelope() async throws {
        try await self.withSMTPServer { server in
            try await withRuntime { runtime in
                let response = try await runtime.sendMail(self.mail(server))
                #expect(response.statusCode == 250)
                let received = server.inbox.messages
                #expect(received.count == 1)
                #expect(received.first?.from == "alerts@example.com")
                #expect(received.first?.recipients == ["ops@example.com", "oncall@example.com"])
                #expect(received.first?.data == self.message)

                // Opportunistic STARTTLS against a server without it still delivers in plain text.
                let second = try await runtime.sendMail(self.mail(server, startTLS: .opportunistic))
                #expect(second.statusCode == 250)
                #expect(server.inbox.messages.count == 2)
            }
        }
    }

    @Test func rejectedRecipientCarriesTheReplyCode() async throws {
        try await self.withSMTPServer { server in
            try await withRuntime { runtime in
                let error = await expectTransferError(.rejected) {
                    _ = try await runtime.sendMail(self.mail(server, recipients: ["reject@example.com"]))
                }
                #expect(error?.protocolResponseCode == 550)
                #expect(error?.requestMayHaveBeenSent == false)
                // The server's words, not only libcurl's "RCPT failed: 550".
                #expect(error?.serverReply == "550 5.1.1 no such user")
                #expect(error?.message.contains("550 5.1.1 no such user") == true, "\(error?.message ?? "")")
                #expect(server.inbox.messages.isEmpty)
            }
        }
    }

    @Test func serverRepliesAreParsed() {
        let replies = SMTPReplies(Array(
            "220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250-smtputf8\r\n250 SIZE 100\r\n250 2.1.0 Ok\r\n550-5.1.1 first\r\n550 5.1.1 second\r\n221 2.0.0 Bye\r\n"
                .utf8))
        #expect(replies.replies.map(\.code) == [220, 250, 250, 550, 221])
        #expect(replies.refusalText == "550 5.1.1 first 5.1.1 second")  // not QUIT's 221
        #expect(replies.extensions == ["PIPELINING", "SMTPUTF8", "SIZE"])
        // Control characters never reach an error message.
        #expect(SMTPReplies(Array("554 bad\u{1B}[31m\r\n".utf8)).refusalText == "554 bad[31m")
        #expect(SMTPReplies(Array("250 ok\r\n".utf8)).refusalText == "")
        #expect(SMTPReplies(Array("garbage\r\n".utf8)).replies.isEmpty)
        #expect(SMTPReplies(Array(String(repeating: "5", count: 3000).utf8)).refusalText.count <= SMTPReplies.maxReplyText + 1)
    }

    @Test func badCredentialsAreAuthenticationFailed() async throws {
        try await self.withSMTPServer { server in
            try await withRuntime { runtime in
                _ = await expectTransferError(.authenticationFailed) {
                    _ = try await runtime.sendMail(self.mail(server, password: "wrong"))
                }
                #expect(server.inbox.messages.isEmpty)
            }
        }
    }

    @Test func requiredSTARTTLSFailsWithoutIt() async throws {
        try await self.withSMTPServer { server in
            try await withRuntime { runtime in
                // Its own code: a configuration error (classified permanent), not a failed handshake.
                _ = await expectTransferError(.tlsUnavailable) {
                    _ = try await runtime.sendMail(self.mail(server, startTLS: .required))
                }
                #expect(server.inbox.messages.isEmpty)
            }
        }
    }

    @Test func ssrfGuardAppliesToSMTP() async throws {
        try await self.withSMTPServer { server in
            try await withRuntime { runtime in
                _ = await expectTransferError(.blockedAddress) {
                    _ = try await runtime.sendMail(self.mail(server, restrict: true))
                }
                #expect(server.inbox.messages.isEmpty)
            }
        }
    }

    @Test func invalidMailIsRejectedUpFront() async throws {
        try await withRuntime { runtime in
            let base = SMTPRequest(url: "smtp://mail.example.com:587", from: "a@example.com", recipients: ["b@example.com"], message: [1])
            var badScheme = base
            badScheme.url = "http://mail.example.com"
            var injected = base
            injected.recipients = ["b@example.com>\r\nRCPT TO:<c@example.com"]
            var noRecipients = base
            noRecipients.recipients = []
            var empty = base
            empty.message = []
            for request in [badScheme, injected, noRecipients, empty] {
                _ = await expectTransferError(.invalidRequest) { _ = try await runtime.sendMail(request) }
            }
        }
    }
}
