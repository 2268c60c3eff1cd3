import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldTemplating

extension ProviderClient {
    /// The SMTP submission it would make (secrets resolved), for previews and tests; smtp providers only.
    public func buildMail(for job: DeliveryJob, recipientField: String = "email", now: Date) throws -> SMTPRequest {
        guard case .smtp(let smtp) = spec.transport else {
            throw ProviderFailure.permanent("provider \(name) is not an smtp provider")
        }
        return try buildSMTPRequest(smtp, job: job, recipientField: recipientField, now: now)
    }

    func buildSMTPRequest(_ smtp: SMTPProviderSpec, job: DeliveryJob, recipientField: String, now: Date) throws(ProviderFailure) -> SMTPRequest {
        let context = RenderContext(try self.context(for: job, now: now))
        let given = (job.to[recipientField]?.stringValue ?? job.to["email"]?.stringValue ?? "")
            .trimmingCharacters(in: .whitespaces)
        guard Self.isPlainAddress(given) else {
            throw .permanent("to.\(recipientField) is not an e-mail address")
        }
        // Domains go out as A-labels (IDNA), so any relay takes them; only a non-ASCII local part
        // needs SMTPUTF8, which the runtime insists the server announces.
        let recipient: String
        do {
            recipient = try IDNA.addressToASCIIDomain(given)
        } catch {
            throw .permanent("to.\(recipientField): \(error)")
        }
        var from = smtp.from.render(context)
        let givenFrom = MailMessage.address(of: from)
        guard Self.isPlainAddress(givenFrom) else {
            throw .permanent("from: '\(MailMessage.clean(from))' has no valid address")
        }
        let envelopeFrom: String
        do {
            envelopeFrom = try IDNA.addressToASCIIDomain(givenFrom)
        } catch {
            throw .permanent("from: \(error)")
        }
        if envelopeFrom != givenFrom { from = from.replacingOccurrences(of: givenFrom, with: envelopeFrom) }
        let messageID = job.deliveryID.uuidString.lowercased() + "@herald"
        let message = MailMessage(
            from: from, to: recipient, subject: job.message.subject, text: job.message.text, html: job.message.html,
            messageID: messageID, date: now, attachments: job.message.attachments ?? [])
        let username = smtp.username.map { $0.render(context) }.flatMap { $0.isEmpty ? nil : $0 }
        let password = smtp.password.map { $0.render(context) }
        let startTLS: SMTPRequest.STARTTLSPolicy =
            switch smtp.startTLS {
            case .required: .required
            case .opportunistic: .opportunistic
            case .none: .none
            }
        return SMTPRequest(
            url: smtp.url.render(context).trimmingCharacters(in: .whitespacesAndNewlines), startTLS: startTLS,
            username: username, password: username == nil ? nil : password, from: envelopeFrom, recipients: [recipient],
            message: message.bytes(), timeout: timeout, connectTimeout: min(timeout, .seconds(10)),
            restrictToPublicAddresses: restrictToPublicAddresses, caFile: smtp.caFile)
    }

    func attemptSMTP(_ smtp: SMTPProviderSpec, job: DeliveryJob, recipientField: String, now: Date) async -> ProviderResult {
        var request: SMTPRequest
        // One budget for the attempt: fetching attachments given by URL counts against the timeout.
        let deadline = ContinuousClock.now + timeout
        do {
            let job = try await withFetchedAttachments(job, deadline: deadline)
            request = try buildSMTPRequest(smtp, job: job, recipientField: recipientField, now: now)
            request.timeout = try remaining(until: deadline)
            request.connectTimeout = min(request.connectTimeout, request.timeout)
        } catch {
            return ResponseClassifier.classify(error)
        }
        do {
            _ = try await runtime.sendMail(request)
            return ProviderResult(outcome: .success, providerMessageID: job.deliveryID.uuidString.lowercased() + "@herald")
        } catch let error as TransferError {
            return Self.classifySMTP(error)
        } catch {
            return ResponseClassifier.classify(error)
        }
    }

    /// The job with every attachment given by `url` fetched into `content`, all files together at most
    /// ``RequestValidator/maximumAttachmentBytes`` (what accept allows for inline ones).
    func withFetchedAttachments(_ job: DeliveryJob, deadline: ContinuousClock.Instant) async throws -> DeliveryJob {
        guard let attachments = job.message.attachments, attachments.contains(where: { $0.url != nil }) else { return job }
        var total = attachments.reduce(0) { $0 + (Base64.decodedCount($1.content) ?? 0) }
        var fetched: [Attachment] = []
        for (index, attachment) in attachments.enumerated() {
            guard let url = attachment.url else {
                fetched.append(attachment)
                continue
            }
            let left = RequestValidator.maximumAttachmentBytes - total
            guard left > 0 else {
                throw ProviderFailure.permanent("attachment \(index): the attachments are over \(RequestValidator.maximumAttachmentBytes) bytes in all")
            }
            let answer = try await fetchMedia(
                url, what: "attachment \(index) (\(MailMessage.clean(attachment.filename)))", limit: "the attachments' limit",
                maxBytes: left, deadline: deadline)
            total += answer.body.count
            fetched.append(Attachment(
                filename: attachment.filename, contentType: attachment.contentType, content: Data(answer.body).base64EncodedString()))
        }
        var job = job
        job.message.attachments = fetched
        return job
    }

    /// SMTP replies: 4xx transient, 5xx permanent; the rest like any transport failure.
    static func classifySMTP(_ error: TransferError) -> ProviderResult {
        let code = error.protocolResponseCode
        if error.code == .rejected || error.code == .authenticationFailed, (400...599).contains(code) {
            return ProviderResult(
                outcome: code >= 500 ? .permanentFailure : .transientFailure, error: "SMTP \(code): \(error.message)")
        }
        if error.code == .authenticationFailed {
            return ProviderResult(outcome: .permanentFailure, error: "SMTP authentication failed: \(error.message)")
        }
        return ResponseClassifier.classify(error)
    }

    /// `local@domain` with nothing that could break out of `<…>` or a header line.
    static func isPlainAddress(_ address: String) -> Bool {
        guard let at = address.lastIndex(of: "@"), at != address.startIndex, address.index(after: at) != address.endIndex
        else { return false }
        return address.unicodeScalars.allSatisfy { scalar in
            scalar.value > 0x20 && scalar.value != 0x7F && !"<>()[],;:\\\"".unicodeScalars.contains(scalar)
        }
    }
}
