#!/usr/bin/env python3
"""Writes the bad-input corpus: one file per malformed input, in a folder per way in.

    python3 Tests/Fixtures/bad-input/generate.py      # rewrites every case file (deterministic)

Folders (how the tests feed them, see Tests/CRMIngestTests/BadInputCorpusTests.swift):
  default/   message bodies of the default format (a RabbitMQ or SQS body, a line of `crm-ingest ingest`)
  proca/     Proca action-queue messages (format proca)
  altcraft/  Altcraft database_import requests (format altcraft_import)
  sns/       SQS bodies with SNS envelopes around default-format messages (sqs.sns: auto)
  jomablue/  SQS bodies with SNS envelopes around Jomablue payloads (format jomablue, sns: auto)
  http/      request bodies POSTed to an HTTP integration (Synerise-style), Content-Type application/json

The outcome each case must have (the exact dead-letter reason, or the HTTP status and error) is in expected.tsv,
next to this file; the tests compare it byte for byte. A case file's name says what it is.
"""
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = {}


def add(folder, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    CASES.setdefault(folder, []).append((name, data))


def dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------------------
# JSON that is not JSON, shared by every way in (each folder gets them, wrapped as that folder needs).
SYNTAX = [
    ("empty", b""),
    ("whitespace-only", b" \n\t "),
    ("truncated-open-brace", b"{"),
    ("truncated-in-key", b'{"ty'),
    ("truncated-in-string", b'{"type":"USER_REG'),
    ("truncated-after-colon", b'{"type":'),
    ("truncated-after-comma", b'{"type":"USER_UPDATE",'),
    ("trailing-comma-object", b'{"type":"USER_UPDATE","contactId":"c-1",}'),
    ("trailing-comma-array", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"tags":[1,2,]}}'),
    ("single-quotes", b"{'type':'USER_UPDATE','contactId':'c-1'}"),
    ("unquoted-keys", b'{type:"USER_UPDATE",contactId:"c-1"}'),
    ("comment", b'{"type":"USER_UPDATE", // who\n"contactId":"c-1"}'),
    ("nan", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"score":NaN}}'),
    ("infinity", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"score":Infinity}}'),
    ("leading-zero", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"age":042}}'),
    ("hex-number", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"age":0x2A}}'),
    ("plus-sign", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"age":+42}}'),
    ("bare-minus", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"age":-}}'),
    ("fraction-without-digits", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"age":1.}}'),
    ("exponent-without-digits", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"age":1e}}'),
    ("number-65-digits", ('{"type":"USER_UPDATE","contactId":"c-1","properties":{"n":' + "9" * 65 + "}}").encode()),
    ("misspelt-literal", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"vip":tru}}'),
    ("data-after-document", b'{"type":"USER_UPDATE","contactId":"c-1"} x'),
    ("two-documents", b'{"type":"USER_UPDATE","contactId":"c-1"}{"type":"USER_UPDATE","contactId":"c-2"}'),
    ("invalid-utf8-byte", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"name":"Ren\xe9"}}'),
    ("overlong-utf8", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"path":"\xc0\xaf"}}'),
    ("utf8-cut-mid-character", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"city":"\xe6\x9d"}}'),
    ("utf8-surrogate-encoded", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"x":"\xed\xa0\x80"}}'),
    ("utf16le-with-bom", "\ufeff{\"type\":\"USER_UPDATE\",\"contactId\":\"c-1\"}".encode("utf-16-le")),
    ("utf16be", '{"type":"USER_UPDATE","contactId":"c-1"}'.encode("utf-16-be")),
    ("utf32le", '{"type":"USER_UPDATE","contactId":"c-1"}'.encode("utf-32-le")),
    ("lone-high-surrogate", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"x":"\\ud800"}}'),
    ("lone-low-surrogate", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"x":"\\udc00"}}'),
    ("high-surrogate-then-letter", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"x":"\\ud83d\\u0041"}}'),
    ("invalid-escape", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"x":"\\x41"}}'),
    ("bad-hex-escape", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"x":"\\u12G4"}}'),
    ("raw-tab-in-string", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"x":"a\tb"}}'),
    ("raw-newline-in-string", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"x":"a\nb"}}'),
    ("raw-nul-in-string", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"x":"a\x00b"}}'),
    ("nul-after-document", b'{"type":"USER_UPDATE","contactId":"c-1"}\x00'),
    ("escaped-nul-in-value", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"firstName":"Ann\\u0000a"}}'),
    ("two-boms", b'\xef\xbb\xbf\xef\xbb\xbf{"type":"USER_UPDATE","contactId":"c-1"}'),
    ("bom-only", b"\xef\xbb\xbf"),
    ("duplicate-key-top", b'{"type":"USER_UPDATE","contactId":"c-1","contactId":"c-2"}'),
    ("duplicate-key-escaped", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"a":1,"\\u0061":2}}'),
    ("nesting-10000-arrays", ('{"type":"USER_UPDATE","contactId":"c-1","properties":{"deep":' + "[" * 10000 + "]" * 10000 + "}}").encode()),
    ("nesting-10000-objects", ('{"type":"USER_UPDATE","contactId":"c-1","properties":' + '{"a":' * 10000 + "1" + "}" * 10000 + "}").encode()),
    ("nesting-unclosed-100000", ("[" * 100000).encode()),
    ("string-1mib", ('{"type":"USER_UPDATE","contactId":"c-1","properties":{"bio":"' + "x" * (1 << 20) + '"}}').encode()),
    ("string-70kib", ('{"type":"USER_UPDATE","contactId":"c-1","properties":{"bio":"' + "x" * (70 << 10) + '"}}').encode()),
    ("string-70kib-escaped", ('{"type":"USER_UPDATE","contactId":"c-1","properties":{"bio":"' + "\\n" * (70 << 10) + '"}}').encode()),
    ("keys-100000", ('{"type":"USER_UPDATE","contactId":"c-1","properties":{' + ",".join('"k%d":%d' % (i, i) for i in range(100000)) + "}}").encode()),
    ("padding-past-1mib", ('{"type":"USER_UPDATE","contactId":"c-1"}' + " " * (1 << 20)).encode()),
]


# ---------------------------------------------------------------------------------------------------------------
# default/: the default format (Symplify's realtime CRM events).
def event(**fields):
    base = {"type": "USER_UPDATE", "contactId": "c-1"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def changed(document, fields):
    """The document with `fields` set: `a__b` names member b of member a; the value DROP removes the member."""
    for key, value in fields.items():
        parts = key.split("__")
        target = document
        for part in parts[:-1]:
            target = target[part]
        if value is DROP:
            target.pop(parts[-1], None)
        else:
            target[parts[-1]] = value
    return document


def deposit(**fields):
    base = {"type": "DEPOSIT_APPROVED", "contactId": "c-1", "timestamp": "2026-05-12T10:00:00Z", "amount": 12.5,
            "currency": "EUR", "transactionId": "t-1"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not DROP}


def consent(**fields):
    base = {"type": "USER_CONSENT_UPDATE", "contactId": "c-1", "channel": "EMAIL", "consented": True}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not DROP}


for name, data in SYNTAX:
    add("default", name, data)

add("default", "top-level-array", b'[{"type":"USER_UPDATE","contactId":"c-1"}]')
add("default", "top-level-string", b'"USER_UPDATE"')
add("default", "top-level-number", b"42")
add("default", "top-level-null", b"null")
add("default", "top-level-true", b"true")
add("default", "empty-object", b"{}")
add("default", "only-unknown-fields", dumps({"kind": "signup", "user": "c-1"}))
add("default", "bom-then-valid-event", b"\xef\xbb\xbf" + dumps(event(properties={"firstName": "Ana"})).encode())
# type
add("default", "type-missing", dumps(event(type=DROP)))
add("default", "type-null", dumps(event(type=None)))
add("default", "type-number", dumps(event(type=7)))
add("default", "type-array", dumps(event(type=["USER_UPDATE"])))
add("default", "type-object", dumps(event(type={"name": "USER_UPDATE"})))
add("default", "type-empty", dumps(event(type="")))
add("default", "type-lower-case", dumps(event(type="user_update")))
add("default", "type-trailing-space", dumps(event(type="USER_UPDATE ")))
add("default", "type-unknown", dumps(event(type="USER_DELETED")))
add("default", "type-very-long", dumps(event(type="X" * 5000)))
# contactId
add("default", "contact-missing", dumps(event(contactId=DROP)))
add("default", "contact-null", dumps(event(contactId=None)))
add("default", "contact-number", dumps(event(contactId=12345)))
add("default", "contact-bool", dumps(event(contactId=True)))
add("default", "contact-object", dumps(event(contactId={"id": "c-1"})))
add("default", "contact-array", dumps(event(contactId=["c-1"])))
add("default", "contact-empty", dumps(event(contactId="")))
add("default", "contact-whitespace", dumps(event(contactId="   ")))
add("default", "contact-300-bytes", dumps(event(contactId="c" * 300)))
add("default", "contact-escaped-nul", b'{"type":"USER_UPDATE","contactId":"c-1\\u0000"}')
# properties
add("default", "properties-array", dumps(event(properties=["firstName", "Ana"])))
add("default", "properties-string", dumps(event(properties="firstName=Ana")))
add("default", "properties-number", dumps(event(properties=1)))
add("default", "properties-bool", dumps(event(properties=False)))
add("default", "properties-1001-keys", dumps(event(properties={"k%d" % i: i for i in range(1001)})))
add("default", "properties-501-flattened", dumps(event(properties={"a": {"k%d" % i: i for i in range(300)}, "b": {"k%d" % i: i for i in range(201)}})))
add("default", "properties-array-100000-items", dumps(event(properties={"scores": list(range(100000))})))
add("default", "properties-33-levels", ('{"type":"USER_UPDATE","contactId":"c-1","properties":' + '{"a":' * 32 + "1" + "}" * 32 + "}").encode())
add("default", "properties-huge-number", b'{"type":"USER_UPDATE","contactId":"c-1","properties":{"firstName":1e400}}')
# consent
add("default", "consent-channel-missing", dumps(consent(channel=DROP)))
add("default", "consent-channel-unknown", dumps(consent(channel="FAX")))
add("default", "consent-channel-lower-case", dumps(consent(channel="email")))
add("default", "consent-channel-number", dumps(consent(channel=1)))
add("default", "consent-consented-missing", dumps(consent(consented=DROP)))
add("default", "consent-consented-string", dumps(consent(consented="true")))
add("default", "consent-consented-number", dumps(consent(consented=1)))
add("default", "consent-consented-null", dumps(consent(consented=None)))
# transactions: timestamp
add("default", "timestamp-missing", dumps(deposit(timestamp=DROP)))
add("default", "timestamp-null", dumps(deposit(timestamp=None)))
add("default", "timestamp-epoch-number", dumps(deposit(timestamp=1778580000)))
add("default", "timestamp-epoch-string", dumps(deposit(timestamp="1778580000")))
add("default", "timestamp-words", dumps(deposit(timestamp="yesterday")))
add("default", "timestamp-month-13", dumps(deposit(timestamp="2026-13-01T00:00:00Z")))
add("default", "timestamp-february-30", dumps(deposit(timestamp="2026-02-30T00:00:00Z")))
add("default", "timestamp-hour-25", dumps(deposit(timestamp="2026-05-12T25:00:00Z")))
add("default", "timestamp-no-zone", dumps(deposit(timestamp="2026-05-12T10:00:00")))
add("default", "timestamp-space-separator", dumps(deposit(timestamp="2026-05-12 10:00:00Z")))
add("default", "timestamp-us-format", dumps(deposit(timestamp="05/12/2026 10:00 AM")))
add("default", "timestamp-offset-minutes-60", dumps(deposit(timestamp="2026-05-12T10:00:00+02:60")))
add("default", "timestamp-10-fraction-digits", dumps(deposit(timestamp="2026-05-12T10:00:00.1234567890Z")))
add("default", "timestamp-year-1", dumps(deposit(timestamp="0001-01-01T00:00:00Z")))
add("default", "timestamp-year-9999", dumps(deposit(timestamp="9999-12-31T23:59:59Z")))
add("default", "timestamp-year-5-digits", dumps(deposit(timestamp="+12026-05-12T10:00:00Z")))
add("default", "timestamp-negative-year", dumps(deposit(timestamp="-2026-05-12T10:00:00Z")))
# transactions: amount
add("default", "amount-missing", dumps(deposit(amount=DROP)))
add("default", "amount-null", dumps(deposit(amount=None)))
add("default", "amount-string", dumps(deposit(amount="12.50")))
add("default", "amount-bool", dumps(deposit(amount=True)))
add("default", "amount-object", dumps(deposit(amount={"value": 12.5})))
add("default", "amount-negative", dumps(deposit(amount=-5)))
add("default", "amount-negative-zero", b'{"type":"DEPOSIT_APPROVED","contactId":"c-1","timestamp":"2026-05-12T10:00:00Z","amount":-0,"currency":"EUR"}')
add("default", "amount-1e400", b'{"type":"DEPOSIT_APPROVED","contactId":"c-1","timestamp":"2026-05-12T10:00:00Z","amount":1e400,"currency":"EUR"}')
add("default", "amount-23-digits", b'{"type":"DEPOSIT_APPROVED","contactId":"c-1","timestamp":"2026-05-12T10:00:00Z","amount":12345678901234567890123,"currency":"EUR"}')
add("default", "amount-1e20", b'{"type":"DEPOSIT_APPROVED","contactId":"c-1","timestamp":"2026-05-12T10:00:00Z","amount":1e20,"currency":"EUR"}')
add("default", "amount-too-precise", b'{"type":"DEPOSIT_APPROVED","contactId":"c-1","timestamp":"2026-05-12T10:00:00Z","amount":0.0000000001,"currency":"EUR"}')
add("default", "amount-tiny-exponent", b'{"type":"DEPOSIT_APPROVED","contactId":"c-1","timestamp":"2026-05-12T10:00:00Z","amount":1e-400,"currency":"EUR"}')
# transactions: short text fields
add("default", "currency-number", dumps(deposit(currency=978)))
add("default", "currency-300-bytes", dumps(deposit(currency="E" * 300)))
add("default", "transaction-id-object", dumps(deposit(transactionId={"id": "t-1"})))
add("default", "transaction-id-300-bytes", dumps(deposit(transactionId="t" * 300)))
add("default", "vendor-array", dumps(deposit(vendor=["psp"])))
add("default", "payment-type-bool", dumps(deposit(paymentType=True)))
add("default", "withdrawal-amount-string", dumps(deposit(type="WITHDRAWAL_REQUESTED", amount="100")))
add("default", "withdrawal-contact-missing", dumps(deposit(type="WITHDRAWAL_CANCELLED", contactId=DROP)))


# ---------------------------------------------------------------------------------------------------------------
# proca/: Proca's action queue (proca:action:2 and proca:event:2).
def proca_action(**fields):
    base = {"schema": "proca:action:2", "stage": "deliver", "actionId": 880412, "actionPageId": 2207, "campaignId": 318,
            "orgId": 77, "org": {"name": "bluesea", "title": "Blue Sea Alliance"},
            "action": {"actionType": "register", "customFields": {"comment": "Protect the reef"},
                       "createdAt": "2026-04-11T14:03:29Z", "testing": False},
            "contact": {"email": "lena.varga@example.hu", "firstName": "Lena", "lastName": "Varga", "contactRef": "Q2h3",
                        "dupeRank": 0, "area": "HU", "country": "HU"},
            "personalInfo": None,
            "campaign": {"name": "save_the_reef", "title": "Save the Reef", "externalId": 4410, "contactSchema": "basic"},
            "actionPage": {"locale": "hu", "name": "bluesea/save_the_reef/hu"}, "tracking": None,
            "privacy": {"withConsent": True, "optIn": True, "givenAt": "2026-04-11T14:03:29Z", "emailStatus": None,
                        "emailStatusChanged": None}}
    return changed(base, fields)


for name, data in SYNTAX[:12]:
    add("proca", name, data)
add("proca", "top-level-array", b"[]")
add("proca", "schema-missing", dumps(proca_action(schema=DROP)))
add("proca", "schema-unknown", dumps(proca_action(schema="proca:action:9")))
add("proca", "schema-number", dumps(proca_action(schema=2)))
add("proca", "contact-missing", dumps(proca_action(contact=DROP)))
add("proca", "contact-string", dumps(proca_action(contact="lena.varga@example.hu")))
add("proca", "email-missing", dumps(proca_action(contact__email=DROP)))
add("proca", "email-number", dumps(proca_action(contact__email=42)))
add("proca", "action-missing", dumps(proca_action(action=DROP)))
add("proca", "action-type-missing", dumps(proca_action(action__actionType=DROP)))
add("proca", "created-at-words", dumps(proca_action(action__createdAt="last tuesday")))
add("proca", "created-at-number", dumps(proca_action(action__createdAt=1744380209)))
add("proca", "campaign-missing", dumps(proca_action(campaign=DROP)))
add("proca", "privacy-opt-in-string", dumps(proca_action(privacy__optIn="yes")))
add("proca", "encrypted-without-keystore", dumps(proca_action(personalInfo={"payload": "AAAA", "nonce": "BBBB",
                                                                           "encryptKey": {"public": "k1"}, "signKey": {"public": "k2"}})))
add("proca", "event-unknown-type", dumps({"schema": "proca:event:2", "eventType": "unsubscribed_everything",
                                          "timestamp": "2026-04-11T14:21:05Z", "supporter": {}}))
add("proca", "event-status-number", dumps({"schema": "proca:event:2", "eventType": "email_status", "timestamp": "2026-04-11T14:21:05Z",
                                           "supporter": {"contact": {"email": "lena.varga@example.hu"}, "privacy": {"emailStatus": 3}}}))
add("proca", "event-supporter-missing", dumps({"schema": "proca:event:2", "eventType": "email_status", "timestamp": "2026-04-11T14:21:05Z"}))
add("proca", "custom-fields-1001-keys", dumps(proca_action(action__customFields={"f%d" % i: i for i in range(1001)})))


# ---------------------------------------------------------------------------------------------------------------
# altcraft/: Altcraft's database_import queue.
def altcraft(**fields):
    base = {"account_id": 1, "db_id": 1, "email": "ivan@example.ru", "data": {"_fname": "Ivan"}}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not DROP}


for name, data in SYNTAX[:8]:
    add("altcraft", name, data)
add("altcraft", "top-level-array", b"[]")
add("altcraft", "account-missing", dumps(altcraft(account_id=DROP)))
add("altcraft", "account-string", dumps(altcraft(account_id="1")))
add("altcraft", "account-other", dumps(altcraft(account_id=2)))
add("altcraft", "db-missing", dumps(altcraft(db_id=DROP)))
add("altcraft", "db-negative", dumps(altcraft(db_id=-1)))
add("altcraft", "db-fraction", dumps(altcraft(db_id=1.5)))
add("altcraft", "matching-unknown", dumps(altcraft(matching="fax")))
add("altcraft", "email-missing", dumps(altcraft(email=DROP)))
add("altcraft", "email-number", dumps(altcraft(email=7)))
add("altcraft", "phone-matching-without-phone", dumps(altcraft(matching="phone")))
add("altcraft", "data-array", dumps(altcraft(data=["Ivan"])))
add("altcraft", "data-string", dumps(altcraft(data="Ivan")))
add("altcraft", "update-only-string", dumps(altcraft(update_only="true")))
add("altcraft", "skip-triggers-number", dumps(altcraft(skip_triggers=1)))
add("altcraft", "data-501-properties", dumps(altcraft(data={"a": {"k%d" % i: i for i in range(300)}, "b": {"k%d" % i: i for i in range(201)}})))


# ---------------------------------------------------------------------------------------------------------------
# sns/ and jomablue/: SQS bodies that carry SNS envelopes (sqs.sns: auto).
def envelope(message, **fields):
    base = {"Type": "Notification", "MessageId": "0b7a64f2-7c59-5f1f-9a38-6c2f7a0d3c11",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:crm-events", "Message": message,
            "Timestamp": "2026-05-13T00:02:10.500Z", "SignatureVersion": "1", "Signature": "c2ln",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/cert.pem"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not DROP}


good_default = dumps(event(properties={"firstName": "Ana"}))
add("sns", "message-not-json", dumps(envelope("USER_UPDATE c-1")))
add("sns", "message-truncated-json", dumps(envelope('{"type":"USER_UPDATE","contactId":')))
add("sns", "message-number", dumps(envelope(42)))
add("sns", "message-object-not-string", dumps(envelope(event())))
add("sns", "message-null", dumps(envelope(None)))
add("sns", "message-missing", dumps(envelope(DROP)))
add("sns", "message-id-missing", dumps(envelope(good_default, MessageId=DROP)))
add("sns", "message-id-number", dumps(envelope(good_default, MessageId=17)))
add("sns", "type-subscription-confirmation", dumps(envelope(good_default, Type="SubscriptionConfirmation")))
add("sns", "type-number", dumps(envelope(good_default, Type=1)))
add("sns", "attributes-not-object", dumps(envelope(good_default, MessageAttributes=["a"])))
add("sns", "attribute-without-value", dumps(envelope(good_default, MessageAttributes={"kind": {"Type": "String"}})))
add("sns", "message-escaped-nul", dumps(envelope('{"type":"USER_UPDATE","contactId":"c-1\\u0000"}')))
add("sns", "message-lone-surrogate", dumps(envelope('{"type":"USER_UPDATE","contactId":"c-\\ud800"}')))
add("sns", "message-unknown-type", dumps(envelope(dumps(event(type="USER_DELETED")))))
add("sns", "message-deep-nesting", dumps(envelope('{"type":"USER_UPDATE","contactId":"c-1","properties":' + '{"a":' * 40 + "1" + "}" * 40 + "}")))
add("sns", "envelope-truncated", dumps(envelope(good_default))[:-20])


def person(**fields):
    base = {"resource_type": "person", "generated_at": "2026-05-13T00:02:10.118Z",
            "context": {"event_id": "northwind/event/5", "event_name": "Cloud Summit"},
            "identifiers": {"first_name": "Jieun", "last_name": "Lee", "email": "jieun.lee@example.co.kr",
                            "id": "northwind/event_person/51490", "organisation_uid": "0035g00000AbC34AAB"},
            "data": {"job_title": "CTO", "cancelled": False, "checked_in": True}}
    return changed(base, fields)


def jomablue(payload):
    text = payload if isinstance(payload, str) else dumps(payload)
    return dumps(envelope(text, MessageAttributes={"resource_type": {"Type": "String", "Value": "person"}}))


add("jomablue", "message-not-json", jomablue("person checked in"))
add("jomablue", "message-array", jomablue([person()]))
add("jomablue", "resource-type-missing", jomablue(person(resource_type=DROP)))
add("jomablue", "resource-type-unknown", jomablue(person(resource_type="badge")))
add("jomablue", "resource-type-number", jomablue(person(resource_type=3)))
add("jomablue", "generated-at-missing", jomablue(person(generated_at=DROP)))
add("jomablue", "generated-at-words", jomablue(person(generated_at="this morning")))
add("jomablue", "generated-at-far-future", jomablue(person(generated_at="9999-01-01T00:00:00Z")))
add("jomablue", "identifiers-missing", jomablue(person(identifiers=DROP)))
add("jomablue", "identifiers-array", jomablue(person(identifiers=["x"])))
add("jomablue", "person-id-missing", jomablue(person(identifiers__id=DROP)))
add("jomablue", "person-email-number", jomablue(person(identifiers__email=5)))
add("jomablue", "data-string", jomablue(person(data="CTO")))
add("jomablue", "checked-in-string", jomablue(person(data__checked_in="yes")))
add("jomablue", "categories-not-array", jomablue(person(data__categories={"id": "c"})))
add("jomablue", "context-event-missing", jomablue(person(context=DROP)))
add("jomablue", "lead-context-missing", jomablue({"resource_type": "lead", "generated_at": "2026-05-13T02:44:19.230Z",
                                                  "identifiers": {"id": "northwind/vendor_lead/9031"}, "data": {}}))
add("jomablue", "deep-nesting", jomablue('{"resource_type":"person","data":' + '{"a":' * 40 + "1" + "}" * 40 + "}"))


# ---------------------------------------------------------------------------------------------------------------
# http/: bodies POSTed to the integration `shop` (event CUSTOM_ORDER, contact from body.customer_email, dedup on
# body.order_number); the test sends them with Content-Type application/json.
for name, data in SYNTAX:
    if name in ("string-1mib", "keys-100000", "padding-past-1mib", "nesting-unclosed-100000"):
        continue  # the over-size ones are below, against http.max_body
    add("http", name, data)
add("http", "top-level-array", b'[{"customer_email":"a@example.com"}]')
add("http", "top-level-string", b'"order"')
add("http", "top-level-null", b"null")
add("http", "empty-object", b"{}")
add("http", "contact-missing", dumps({"order_number": "o-1", "total": 10}))
add("http", "contact-null", dumps({"order_number": "o-1", "customer_email": None}))
add("http", "contact-empty", dumps({"order_number": "o-1", "customer_email": ""}))
add("http", "contact-bool", dumps({"order_number": "o-1", "customer_email": True}))
add("http", "contact-object", dumps({"order_number": "o-1", "customer_email": {"a": 1}}))
add("http", "contact-array", dumps({"order_number": "o-1", "customer_email": ["a@example.com"]}))
add("http", "dedup-parameter-missing", dumps({"customer_email": "a@example.com", "total": 10}))
add("http", "dedup-parameter-object", dumps({"customer_email": "a@example.com", "order_number": {"n": 1}}))
add("http", "properties-501", dumps({"customer_email": "a@example.com", "order_number": "o-1",
                                      "a": {"k%d" % i: i for i in range(300)}, "b": {"k%d" % i: i for i in range(201)}}))
add("http", "body-past-max-body", ('{"customer_email":"a@example.com","order_number":"o-1","note":"' + "x" * (1 << 20) + '"}').encode())


def main():
    for folder in CASES:
        path = os.path.join(HERE, folder)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.makedirs(path)
        names = set()
        for number, (name, data) in enumerate(CASES[folder], start=1):
            assert name not in names, f"{folder}/{name} twice"
            names.add(name)
            with open(os.path.join(path, "%03d-%s.json" % (number, name)), "wb") as out:
                out.write(data)
    total = sum(len(cases) for cases in CASES.values())
    print("%d cases: %s" % (total, ", ".join("%s %d" % (f, len(c)) for f, c in CASES.items())))


if __name__ == "__main__":
    main()
