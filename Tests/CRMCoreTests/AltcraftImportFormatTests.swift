import CRMCore
import Testing

/// Altcraft's `database_import` requests: decoding, matching modes, errors, and the replies' shape. No store here.
@Suite("Altcraft import format")
struct AltcraftImportFormatTests {
    static let mapping = Mapping(
        attributes: [AttributeDefinition(name: "_fname", headers: ["_fname"]), AttributeDefinition(name: "_lname", headers: ["_lname"])],
        actions: [AltcraftImportFormat.importType: [.enterJourney(journey: 7)]]
    )

    static func prepare(_ body: String, format: AltcraftImportFormat = AltcraftImportFormat()) -> PreparedMessage {
        let processor = EventProcessor(mapping: mapping, format: .altcraftImport(format))
        return processor.prepare(IncomingMessage(body: Array(body.utf8), identity: .messageId("m1"), mayBeRedelivery: false,
                                                 receivedAt: Timestamp(secondsSinceEpoch: 1_700_000_000), source: "altcraft"))
    }

    static func importOf(_ body: String) throws -> (PlannedEvent, ProfileImport) {
        guard case let .event(event) = prepare(body) else { throw EventError(.unresolvable, field: "", reason: "not an event: \(prepare(body))") }
        guard case let .importProfile(profile)? = event.operations.first, event.operations.count == 1 else {
            throw EventError(.unresolvable, field: "", reason: "expected one importProfile, got \(event.operations)")
        }
        return (event, profile)
    }

    /// The seed's own example.
    static let seedExample = #"{"account_id":1,"data":{"_fname":"John","_lname":"Doe"},"db_id":1,"email":"example@example.com","feedback_id":"abcdefghijklmnqrstuvwxyz","update_only":true}"#

    @Test func theSeedsExampleIsAnUpdateOnlyImportMatchedByEmail() throws {
        let (event, profile) = try Self.importOf(Self.seedExample)
        #expect(profile.list == 1)
        #expect(profile.match == .email("example@example.com"))
        #expect(profile.updateOnly)
        #expect(profile.attributes == [AttributeValue(name: "_fname", value: .string("John")), AttributeValue(name: "_lname", value: .string("Doe"))])
        #expect(profile.newContactId.count == 24 && profile.newContactId.allSatisfy(\.isHexDigit))
        #expect(event.contactId == profile.newContactId)
        #expect(event.type == AltcraftImportFormat.importType)
        #expect(event.reply == ImportReplyRequest(feedbackId: "abcdefghijklmnqrstuvwxyz", matchingField: "email"))
        // The mapping's actions ride along, aimed at the profile by its would-be id.
        #expect(profile.then == [.enterJourney(journey: 7, contactId: profile.newContactId, at: Timestamp(secondsSinceEpoch: 1_700_000_000))])
    }

    @Test func skipTriggersDropsEnterJourney() throws {
        let (_, profile) = try Self.importOf(#"{"account_id":1,"db_id":1,"email":"a@b.c","data":{},"skip_triggers":true}"#)
        #expect(profile.then.isEmpty)
        #expect(!profile.updateOnly)
    }

    @Test func everyMatchingMode() throws {
        #expect(try Self.importOf(#"{"account_id":1,"db_id":2,"matching":"phone","phone":"+7 (900) 000-00-00","data":{}}"#).1.match == .phone("+79000000000"))
        #expect(try Self.importOf(#"{"account_id":1,"db_id":2,"matching":"profile_id","profile_id":"p-1","data":{}}"#).1.match == .profileId("p-1"))
        #expect(try Self.importOf(#"{"account_id":1,"db_id":2,"matching":"custom","field_name":"CRM_ID","field_value":123420,"data":{}}"#).1.match
            == .field(name: "CRM_ID", value: "123420"))
        // By profile id, the id the mapping's actions name is the profile's own.
        #expect(try Self.importOf(#"{"account_id":1,"db_id":2,"matching":"profile_id","profile_id":"p-1","data":{}}"#).1.newContactId == "p-1")
        // The same person matched twice gets the same new id: redeliveries create one profile; emails ignore case.
        let a = try Self.importOf(#"{"account_id":1,"db_id":2,"email":"Ann@Example.com","data":{}}"#).1.newContactId
        let b = try Self.importOf(#"{"account_id":"1","db_id":"2","email":"ann@example.com","data":{}}"#).1.newContactId
        let c = try Self.importOf(#"{"account_id":1,"db_id":3,"email":"ann@example.com","data":{}}"#).1.newContactId
        #expect(a == b && a != c)
    }

    @Test func invalidRequestsNameTheFieldAndTheReason() {
        let cases: [(String, String)] = [
            ("not json", "invalidJSON"),
            ("[1]", "expected a JSON object, got an array"),
            (#"{"db_id":1,"email":"a@b.c","data":{}}"#, "account_id: required: an integer"),
            (#"{"account_id":1.5,"db_id":1,"email":"a@b.c","data":{}}"#, #"account_id: expected an integer, got "1.5""#),
            (#"{"account_id":1,"email":"a@b.c","data":{}}"#, "db_id: required: an integer"),
            (#"{"account_id":1,"db_id":0,"email":"a@b.c","data":{}}"#, "db_id: expected a positive database id, got 0"),
            (#"{"account_id":1,"db_id":1,"data":{}}"#, "email: required when matching by email (the default)"),
            (#"{"account_id":1,"db_id":1,"email":"nobody","data":{}}"#, #"email: not an email address: "nobody""#),
            (#"{"account_id":1,"db_id":1,"matching":"fax","data":{}}"#, #"matching: expected email, phone, profile_id or custom, got "fax""#),
            (#"{"account_id":1,"db_id":1,"matching":"phone","phone":"call me","data":{}}"#, #"phone: expected digits with an optional leading +, got "call me""#),
            (#"{"account_id":1,"db_id":1,"matching":"profile_id","data":{}}"#, "profile_id: required when matching by profile_id"),
            (#"{"account_id":1,"db_id":1,"matching":"custom","field_value":"1","data":{}}"#, "field_name: required when matching by a custom field"),
            (#"{"account_id":1,"db_id":1,"matching":"custom","field_name":"CRM_ID","data":{}}"#, "field_value: required when matching by a custom field"),
            (#"{"account_id":1,"db_id":1,"email":"a@b.c"}"#, "data: required: the profile's fields"),
            (#"{"account_id":1,"db_id":1,"email":"a@b.c","data":[1]}"#, "data: expected an object of profile fields, got an array"),
            (#"{"account_id":1,"db_id":1,"email":"a@b.c","data":{},"update_only":"yes"}"#, #"update_only: expected true or false, got "yes""#),
            (#"{"account_id":1,"db_id":1,"email":"a@b.c","data":{},"feedback_id":{}}"#, "feedback_id: expected a string, got an object"),
        ]
        for (body, reason) in cases {
            guard case let .rejected(error) = Self.prepare(body) else {
                Issue.record("accepted: \(body)")
                continue
            }
            if reason == "invalidJSON" { #expect(error.code == .invalidJSON) } else { #expect(error.description == reason, "\(body)") }
        }
        guard case let .rejected(error) = Self.prepare(#"{"account_id":2,"db_id":1,"email":"a@b.c","data":{}}"#, format: AltcraftImportFormat(accountId: 1)) else {
            Issue.record("another account accepted")
            return
        }
        #expect(error.description == "account_id: this source imports for account 1, got 2")
    }

    @Test func repliesUseTheSeedsFieldNames() throws {
        let request = ImportReplyRequest(feedbackId: "abc", matchingField: "email")
        let ok = try JSONParser().parse(request.body(for: .imported(ProfileImportResult(profileId: "p1", created: true))))
        #expect(ok == .object([("error", .number("0")), ("error_text", .string("")), ("feedback_id", .string("abc")),
                               ("matching_field", .string("email")), ("profile_id", .string("p1"))]))
        let noMatch = try JSONParser().parse(request.body(for: .imported(ProfileImportResult(profileId: nil, failure: .noMatch("no profile")))))
        #expect(noMatch["error"] == .number("2") && noMatch["error_text"] == .string("no profile") && noMatch["profile_id"] == .string(""))
        let refused = try JSONParser().parse(request.body(for: .failed(StoreError(.rejected, "constraint"))))
        #expect(refused["error"] == .number("4"))
        // A refused request is answered with what can be read of it.
        let processor = EventProcessor(mapping: Self.mapping, format: .altcraftImport(AltcraftImportFormat()))
        let message = IncomingMessage(body: Array(#"{"feedback_id":"f9","matching":"phone"}"#.utf8), identity: .content, mayBeRedelivery: false,
                                      receivedAt: Timestamp(secondsSinceEpoch: 0), source: "altcraft")
        let reply = try JSONParser().parse(processor.errorReply(to: message, code: .invalidRequest, text: "account_id: required") ?? [])
        #expect(reply["feedback_id"] == .string("f9") && reply["matching_field"] == .string("phone") && reply["error"] == .number("1"))
        #expect(EventProcessor(mapping: Self.mapping).errorReply(to: message, code: .invalidRequest, text: "x") == nil)
    }
}
